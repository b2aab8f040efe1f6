package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// ReplayStore is a store of used nonces that the replicas of a service
// share, so that a nonce used at one replica is refused at every other
// (Config.ReplayStore). Package redisstore implements it on Redis or
// Valkey.
//
// The service asks the store only about nonces whose MAC and age verified
// and whose EK is trusted, and only after the replica's own used-nonce
// cache admitted them (within its caps and the EK's quota): the store never
// sees a key a client chose, and a stranger cannot fill it.
type ReplayStore interface {
	// Use marks key used for ttl, atomically: of any number of calls with
	// one key within ttl, on any replica, exactly one returns nil. The
	// others return an error wrapping ErrNonceReplayed. Any other error
	// means the store could not tell (unreachable, timed out, out of
	// memory): the service then refuses the submission (fail closed).
	//
	// key is a fixed-length lowercase hex string derived from the nonce.
	Use(ctx context.Context, key string, ttl time.Duration) error
}

// ErrReplayStore is wrapped by the errors of a submission refused because
// the shared replay store could not tell whether its nonce was used: the
// service answers 503 with Retry-After, and logs the store's error.
var ErrReplayStore = errors.New("service: replay store unavailable")

// replayKeyLabel separates the replay store's keys from any other use of
// a nonce's hash.
const replayKeyLabel = "csv-attest-used-nonce/v1\x00"

// replayKey is the replay store's key of a verified nonce: 32 hex digits
// (128 bits of SHA-256 over the whole nonce, MAC included), so that the
// store's keys have a fixed length and form whatever a client sends.
func replayKey(raw []byte) string {
	h := sha256.New()
	h.Write([]byte(replayKeyLabel))
	h.Write(raw)
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// replayTTL is how long the replay store keeps a used nonce: the nonce's
// validity plus twice the clock skew allowed, as replicas' clocks (and
// the store's) may each be off by up to maxClockSkew.
func replayTTL(nonceTTL time.Duration) time.Duration { return nonceTTL + 2*maxClockSkew }

// useShared marks a nonce used in the shared store. A nonce the store
// already holds is ErrNonceReplayed; a store that cannot tell is
// ErrReplayStore (or the context's error, if ctx ended first).
func (n *nonces) useShared(ctx context.Context, raw []byte) error {
	err := n.store.Use(ctx, replayKey(raw), replayTTL(n.ttl))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNonceReplayed):
		return &NonceError{Err: ErrNonceReplayed, Detail: "a submission with this nonce was already judged (by this or another replica): fetch a new nonce"}
	case ctx.Err() != nil:
		return fmt.Errorf("%w: %w", context.Cause(ctx), err)
	default:
		return fmt.Errorf("%w: %w", ErrReplayStore, err)
	}
}
