package service

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Nonces are self-authenticating, so that any replica holding the nonce
// key can check one it did not mint, without shared state:
//
//	nonce = version (1) | issued, Unix milliseconds (6) | random (9) | MAC (16)
//	MAC   = HMAC-SHA256(key, "csv-attest-nonce\x00" | version | issued | random | binding), first 16 bytes
//	binding = SHA-256("csv-attest-nonce-binding/v1\x00" | len(AK name) (2) | AK name | EK key SHA-256)
//
// 32 bytes: a quote's qualifying data is a TPM2B_DATA, which holds
// sizeof(TPMT_HA) bytes, 34 on a TPM whose largest hash is SHA-256. The
// binding is not in the nonce: the service recomputes it from the AK and
// EK of the evidence, so a nonce minted for one host does not verify for
// evidence naming another AK or EK. The random part is the nonce's id in
// logs and in the used-nonce cache (72 bits: a collision among a million
// live nonces has odds of about one in ten billion, and would only refuse
// a host, which then asks again).

const (
	nonceVersion  = 1
	nonceTimeLen  = 6
	nonceRandLen  = 9
	nonceMACLen   = 16
	nonceLen      = 1 + nonceTimeLen + nonceRandLen + nonceMACLen
	nonceRandOff  = 1 + nonceTimeLen
	minNonceKey   = 32
	nonceMACLabel = "csv-attest-nonce\x00"
	bindingLabel  = "csv-attest-nonce-binding/v1\x00"
	// maxClockSkew is how far in the future a nonce's issue time may be:
	// replicas' clocks differ a little.
	maxClockSkew = 5 * time.Second
)

// Errors about nonces. A *NonceError wraps one of them.
var (
	// ErrNonceInvalid: not a nonce this service minted, or minted for
	// another AK or EK.
	ErrNonceInvalid = errors.New("service: invalid nonce")
	// ErrNonceExpired: minted too long ago.
	ErrNonceExpired = errors.New("service: nonce expired")
	// ErrNonceReplayed: already used (on this replica, or on any replica
	// sharing its Config.ReplayStore).
	ErrNonceReplayed = errors.New("service: nonce already used")
	// ErrReplayCacheFull: the used-nonce cache is full; nothing is judged
	// until older entries expire (fail closed).
	ErrReplayCacheFull = errors.New("service: used-nonce cache full")
	// ErrEKQuota: this EK has used its share of the used-nonce cache
	// (Config.MaxUsedNoncesPerEK); its submissions are refused until its
	// older entries expire. Other EKs are not affected.
	ErrEKQuota = errors.New("service: too many nonces used by this EK")
)

// NonceError is a refused nonce, with why.
type NonceError struct {
	Err    error
	Detail string
	// retryAfter is, for ErrReplayCacheFull and ErrEKQuota, when room
	// frees up.
	retryAfter time.Duration
}

func (e *NonceError) Error() string { return e.Err.Error() + ": " + e.Detail }
func (e *NonceError) Unwrap() error { return e.Err }

// nonces mints and checks nonces.
type nonces struct {
	keys  [][]byte // keys[0] mints; all verify (key rotation)
	ttl   time.Duration
	used  *usedNonces
	store ReplayStore // shared by the replicas; nil: this replica's cache only
}

// binding is what a nonce is bound to.
func binding(akName []byte, ekKey [32]byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(bindingLabel))
	var n [2]byte
	binary.BigEndian.PutUint16(n[:], uint16(len(akName)))
	h.Write(n[:])
	h.Write(akName)
	h.Write(ekKey[:])
	var out [32]byte
	h.Sum(out[:0])
	return out
}

func nonceMAC(key, body []byte, bind [32]byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(nonceMACLabel))
	m.Write(body)
	m.Write(bind[:])
	return m.Sum(nil)[:nonceMACLen]
}

// mint returns a nonce bound to bind, and its id.
func (n *nonces) mint(now time.Time, bind [32]byte) (raw []byte, id string, err error) {
	raw = make([]byte, 0, nonceLen)
	raw = append(raw, nonceVersion)
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(now.UnixMilli()))
	raw = append(raw, ms[8-nonceTimeLen:]...)
	var r [nonceRandLen]byte
	if _, err := rand.Read(r[:]); err != nil {
		return nil, "", fmt.Errorf("service: reading random bytes: %w", err)
	}
	raw = append(raw, r[:]...)
	raw = append(raw, nonceMAC(n.keys[0], raw, bind)...)
	return raw, hex.EncodeToString(r[:]), nil
}

// encodeNonce and decodeNonce are the nonce's text form.
func encodeNonce(raw []byte) string { return base64.RawURLEncoding.EncodeToString(raw) }

func decodeNonce(s string) ([]byte, error) {
	if len(s) > maxNonceLen {
		return nil, &NonceError{Err: ErrNonceInvalid, Detail: fmt.Sprintf("%d characters", len(s))}
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, &NonceError{Err: ErrNonceInvalid, Detail: "not base64url"}
	}
	if len(raw) != nonceLen || raw[0] != nonceVersion {
		return nil, &NonceError{Err: ErrNonceInvalid, Detail: "not a version 1 nonce"}
	}
	return raw, nil
}

// nonceID returns the id of a decoded nonce (trusted only after verify).
func nonceID(raw []byte) string {
	if len(raw) != nonceLen {
		return ""
	}
	return hex.EncodeToString(raw[nonceRandOff : nonceRandOff+nonceRandLen])
}

// verify checks a decoded nonce's MAC against bind and its age. It keeps
// no state: use marks the nonce used, once the EK is trusted.
func (n *nonces) verify(raw []byte, bind [32]byte, now time.Time) error {
	body, mac := raw[:nonceLen-nonceMACLen], raw[nonceLen-nonceMACLen:]
	ok := false
	for _, k := range n.keys {
		if hmac.Equal(nonceMAC(k, body, bind), mac) {
			ok = true
		}
	}
	if !ok {
		return &NonceError{Err: ErrNonceInvalid, Detail: "its MAC does not verify: this service did not mint it, or minted it for another AK or EK"}
	}
	var ms [8]byte
	copy(ms[8-nonceTimeLen:], raw[1:1+nonceTimeLen])
	issued := time.UnixMilli(int64(binary.BigEndian.Uint64(ms[:])))
	switch {
	case issued.After(now.Add(maxClockSkew)):
		return &NonceError{Err: ErrNonceInvalid, Detail: fmt.Sprintf("issued in the future (%s)", issued.UTC().Format(time.RFC3339))}
	case !now.Before(issued.Add(n.ttl)):
		return &NonceError{Err: ErrNonceExpired, Detail: fmt.Sprintf("issued %s, valid for %s", issued.UTC().Format(time.RFC3339), n.ttl)}
	}
	return nil
}

// use marks a verified nonce used by the EK ekKey: a nonce is single-use
// whatever the outcome of the evidence it came with. Only nonces of
// trusted EKs reach it, so a stranger cannot fill the cache; an EK over
// its quota is refused (ErrEKQuota) and no other.
//
// With a shared store the replica's own cache is asked first (its caps and
// the EK's quota bound what reaches the store, and a replay to the same
// replica costs no round trip), then the store, which decides for every
// replica. When the store cannot tell, the nonce is taken off this
// replica's cache again, so the host may retry with it once the store is
// back (the store, not this cache, then decides), and the error wraps
// ErrReplayStore: the submission is refused.
func (n *nonces) use(ctx context.Context, raw []byte, ekKey [32]byte, now time.Time) error {
	var id [nonceRandLen]byte
	copy(id[:], raw[nonceRandOff:])
	if err := n.used.use(id, ekKey, now); err != nil {
		return err
	}
	if n.store == nil {
		return nil
	}
	err := n.useShared(ctx, raw)
	if err != nil && !errors.Is(err, ErrNonceReplayed) {
		n.used.forget(id, ekKey)
	}
	return err
}

// usedNonces remembers the nonces used on this replica for at least as long
// as they are valid, in two generations: every ttl+maxClockSkew the current
// generation becomes the previous one and the previous one is dropped. An
// entry is therefore kept between one and two periods, and a nonce is valid
// for at most one. The total is capped: when full, nonces are refused
// (ErrReplayCacheFull) rather than forgotten. So is each EK's share, counted
// per generation and rotated with them: an EK with maxPerEK live entries
// is refused (ErrEKQuota) until its older entries expire.
type usedNonces struct {
	mu            sync.Mutex
	cur, prev     map[[nonceRandLen]byte]struct{}
	curEK, prevEK map[[32]byte]int // live entries per EK key SHA-256
	rotated       time.Time
	lastUse       time.Time // of the current generation's newest entry
	period        time.Duration
	max, maxPerEK int
}

func newUsedNonces(ttl time.Duration, max, maxPerEK int, now time.Time) *usedNonces {
	return &usedNonces{
		cur: map[[nonceRandLen]byte]struct{}{}, prev: map[[nonceRandLen]byte]struct{}{},
		curEK: map[[32]byte]int{}, prevEK: map[[32]byte]int{},
		rotated: now, period: ttl + maxClockSkew, max: max, maxPerEK: maxPerEK,
	}
}

func (u *usedNonces) use(id [nonceRandLen]byte, ek [32]byte, now time.Time) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if now.Sub(u.rotated) >= u.period {
		if now.Sub(u.lastUse) >= u.period {
			// Every entry of the current generation has expired too.
			u.prev, u.prevEK = make(map[[nonceRandLen]byte]struct{}), make(map[[32]byte]int)
		} else {
			u.prev, u.prevEK = u.cur, u.curEK
		}
		u.cur = make(map[[nonceRandLen]byte]struct{}, len(u.prev))
		u.curEK = make(map[[32]byte]int, len(u.prevEK))
		u.rotated = now
	}
	if _, ok := u.cur[id]; ok {
		return &NonceError{Err: ErrNonceReplayed, Detail: "a submission with this nonce was already judged: fetch a new nonce"}
	}
	if _, ok := u.prev[id]; ok {
		return &NonceError{Err: ErrNonceReplayed, Detail: "a submission with this nonce was already judged: fetch a new nonce"}
	}
	// The previous generation's entries go at the next rotation, the
	// current one's at the one after.
	wait := func(inPrev int) time.Duration {
		d := u.rotated.Add(u.period).Sub(now)
		if inPrev == 0 {
			d += u.period
		}
		return max(d, time.Second)
	}
	if n := u.curEK[ek] + u.prevEK[ek]; n >= u.maxPerEK {
		return &NonceError{Err: ErrEKQuota, Detail: fmt.Sprintf("this EK used %d nonces in the last %s (at most %d)", n, 2*u.period, u.maxPerEK),
			retryAfter: wait(u.prevEK[ek])}
	}
	if len(u.cur)+len(u.prev) >= u.max {
		return &NonceError{Err: ErrReplayCacheFull, Detail: fmt.Sprintf("%d nonces used in the last %s", u.max, 2*u.period),
			retryAfter: wait(len(u.prev))}
	}
	u.cur[id] = struct{}{}
	u.curEK[ek]++
	if now.After(u.lastUse) {
		// Never backwards: a slower request may come with an older time,
		// and the rotation must not take the current generation for
		// expired while it holds a newer entry.
		u.lastUse = now
	}
	return nil
}

// forget takes a nonce that use has just entered off the cache again (the
// shared store could not tell whether it was used elsewhere).
func (u *usedNonces) forget(id [nonceRandLen]byte, ek [32]byte) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, g := range []struct {
		ids map[[nonceRandLen]byte]struct{}
		eks map[[32]byte]int
	}{{u.cur, u.curEK}, {u.prev, u.prevEK}} {
		if _, ok := g.ids[id]; !ok {
			continue
		}
		delete(g.ids, id)
		if g.eks[ek] <= 1 {
			delete(g.eks, ek)
		} else {
			g.eks[ek]--
		}
		return
	}
}

// len returns the number of remembered nonces.
func (u *usedNonces) len() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.cur) + len(u.prev)
}
