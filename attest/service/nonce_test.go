package service

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

// checkNonce verifies a nonce and marks it used, as judge does for a
// trusted EK.
func checkNonce(n *nonces, raw []byte, bind [32]byte, now time.Time) error {
	if err := n.verify(raw, bind, now); err != nil {
		return err
	}
	return n.use(context.Background(), raw, [32]byte{9}, now)
}

func TestNonce(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	key := bytes.Repeat([]byte{1}, 32)
	n := &nonces{keys: [][]byte{key}, ttl: time.Minute, used: newUsedNonces(time.Minute, 100, 100, now)}
	bind := binding([]byte{0, 0xb, 1, 2, 3}, [32]byte{9})
	raw, id, err := n.mint(now, bind)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) != nonceLen || len(raw) > 32 || nonceID(raw) != id {
		t.Fatalf("nonce %x id %s", raw, id)
	}
	dec, err := decodeNonce(encodeNonce(raw))
	if err != nil || !bytes.Equal(dec, raw) {
		t.Fatal(err)
	}
	// Any changed byte makes it invalid (or another version).
	for i := range raw {
		bad := bytes.Clone(raw)
		bad[i] ^= 0x10
		if err := checkNonce(n, bad, bind, now); !errors.Is(err, ErrNonceInvalid) {
			t.Errorf("byte %d changed: %v", i, err)
		}
	}
	// Bound to the AK and EK.
	if err := checkNonce(n, raw, binding([]byte{0, 0xb, 1, 2, 4}, [32]byte{9}), now); !errors.Is(err, ErrNonceInvalid) {
		t.Errorf("other AK: %v", err)
	}
	if err := checkNonce(n, raw, binding([]byte{0, 0xb, 1, 2, 3}, [32]byte{8}), now); !errors.Is(err, ErrNonceInvalid) {
		t.Errorf("other EK: %v", err)
	}
	// Another key (another deployment) does not verify it; a rotated-in
	// key list that still holds the old key does.
	other := &nonces{keys: [][]byte{bytes.Repeat([]byte{2}, 32)}, ttl: time.Minute, used: newUsedNonces(time.Minute, 100, 100, now)}
	if err := checkNonce(other, raw, bind, now); !errors.Is(err, ErrNonceInvalid) {
		t.Errorf("other key: %v", err)
	}
	rotated := &nonces{keys: [][]byte{bytes.Repeat([]byte{2}, 32), key}, ttl: time.Minute, used: newUsedNonces(time.Minute, 100, 100, now)}
	if err := checkNonce(rotated, raw, bind, now); err != nil {
		t.Errorf("rotated keys: %v", err)
	}
	// The issue time reads back.
	var ms [8]byte
	copy(ms[2:], raw[1:7])
	if got := int64(binary.BigEndian.Uint64(ms[:])); got != now.UnixMilli() {
		t.Fatalf("issue time %d, want %d", got, now.UnixMilli())
	}
	// Expiry and the future.
	if err := checkNonce(n, raw, bind, now.Add(time.Minute)); !errors.Is(err, ErrNonceExpired) {
		t.Errorf("expired: %v", err)
	}
	if err := checkNonce(n, raw, bind, now.Add(-10*time.Second)); !errors.Is(err, ErrNonceInvalid) {
		t.Errorf("issued in the future: %v", err)
	}
	// Single use.
	if err := checkNonce(n, raw, bind, now.Add(59*time.Second)); err != nil {
		t.Fatal(err)
	}
	var ne *NonceError
	if err := checkNonce(n, raw, bind, now.Add(59*time.Second)); !errors.Is(err, ErrNonceReplayed) || !errors.As(err, &ne) {
		t.Errorf("replayed: %v", err)
	}
	for _, s := range []string{"", "!!", encodeNonce(raw[:20]), encodeNonce(append(bytes.Clone(raw), 0)), string(bytes.Repeat([]byte("A"), 200))} {
		if _, err := decodeNonce(s); !errors.Is(err, ErrNonceInvalid) {
			t.Errorf("decode %q: %v", s, err)
		}
	}
}

// TestUsedNonces: an entry is remembered at least as long as its nonce is
// valid, and the cache never holds more than its cap.
func TestUsedNonces(t *testing.T) {
	t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	ttl := time.Minute
	u := newUsedNonces(ttl, 3, 100, t0)
	id := func(b byte) [nonceRandLen]byte { return [nonceRandLen]byte{b} }
	ek := [32]byte{1}
	period := ttl + maxClockSkew
	// Used just before a rotation, still refused a full period later.
	if err := u.use(id(1), ek, t0.Add(period-time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := u.use(id(2), ek, t0.Add(period)); err != nil { // rotates: 1 moves to prev
		t.Fatal(err)
	}
	if err := u.use(id(1), ek, t0.Add(2*period-2*time.Second)); !errors.Is(err, ErrNonceReplayed) {
		t.Errorf("within its validity: %v", err)
	}
	if err := u.use(id(3), ek, t0.Add(period+time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := u.use(id(4), ek, t0.Add(period+2*time.Second)); !errors.Is(err, ErrReplayCacheFull) {
		t.Errorf("over the cap: %v", err)
	}
	// Two periods on, everything has expired and the cache is empty.
	if err := u.use(id(5), ek, t0.Add(4*period)); err != nil {
		t.Fatal(err)
	}
	if u.len() != 1 {
		t.Errorf("%d entries, want 1", u.len())
	}
}

// TestUsedNoncesPerEK: an EK's share of the cache is capped, per
// generation and rotated with them; another EK is not affected; a replay
// is a replay whatever the quota; the Retry-After says when room frees.
func TestUsedNoncesPerEK(t *testing.T) {
	t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	ttl := time.Minute
	period := ttl + maxClockSkew
	u := newUsedNonces(ttl, 100, 2, t0)
	id := func(b byte) [nonceRandLen]byte { return [nonceRandLen]byte{b} }
	a, b := [32]byte{0xa}, [32]byte{0xb}
	for i := byte(1); i <= 2; i++ {
		if err := u.use(id(i), a, t0); err != nil {
			t.Fatal(err)
		}
	}
	var ne *NonceError
	err := u.use(id(3), a, t0.Add(time.Second))
	if !errors.Is(err, ErrEKQuota) || !errors.As(err, &ne) {
		t.Fatalf("over the quota: %v", err)
	}
	// Both entries are in the current generation: they go two rotations on.
	if want := 2*period - time.Second; ne.retryAfter != want {
		t.Errorf("retry after %s, want %s", ne.retryAfter, want)
	}
	if err := u.use(id(1), a, t0.Add(time.Second)); !errors.Is(err, ErrNonceReplayed) {
		t.Errorf("a replay over the quota: %v", err)
	}
	if err := u.use(id(4), b, t0.Add(time.Second)); err != nil {
		t.Errorf("another EK: %v", err)
	}
	if u.len() != 3 {
		t.Errorf("%d entries, want 3 (the refused one is not remembered)", u.len())
	}
	// One rotation on, a's entries are in the previous generation: still
	// counted.
	if err := u.use(id(5), b, t0.Add(period)); err != nil {
		t.Fatal(err)
	}
	if err := u.use(id(6), a, t0.Add(period+time.Second)); !errors.Is(err, ErrEKQuota) || !errors.As(err, &ne) || ne.retryAfter != period-time.Second {
		t.Errorf("after one rotation: %v", err)
	}
	// Two rotations on, they are gone.
	if err := u.use(id(7), a, t0.Add(2*period)); err != nil {
		t.Errorf("after two rotations: %v", err)
	}
}

// TestUsedNoncesOutOfOrder: a request that read the clock earlier and uses
// its nonce later must not make the rotation forget newer entries.
func TestUsedNoncesOutOfOrder(t *testing.T) {
	t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	ttl := time.Minute
	period := ttl + maxClockSkew
	u := newUsedNonces(ttl, 100, 100, t0)
	ek := [32]byte{1}
	if err := u.use([nonceRandLen]byte{1}, ek, t0.Add(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := u.use([nonceRandLen]byte{2}, ek, t0.Add(5*time.Second)); err != nil { // a slower request
		t.Fatal(err)
	}
	// Rotation time; nonce 1 (used at 10 s) is still to be remembered.
	if err := u.use([nonceRandLen]byte{1}, ek, t0.Add(period+6*time.Second)); !errors.Is(err, ErrNonceReplayed) {
		t.Fatalf("replay after an out-of-order use: %v", err)
	}
}
