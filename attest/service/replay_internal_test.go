package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"testing"
	"time"
)

// fakeStore is a ReplayStore in memory that can be made to fail.
type fakeStore struct {
	mu    sync.Mutex
	keys  map[string]time.Duration
	calls int
	err   error // returned by Use while set
}

func (f *fakeStore) Use(_ context.Context, key string, ttl time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return f.err
	}
	if f.keys == nil {
		f.keys = map[string]time.Duration{}
	}
	if _, ok := f.keys[key]; ok {
		return fmt.Errorf("fake: %w", ErrNonceReplayed)
	}
	f.keys[key] = ttl
	return nil
}

// TestUseShared: two replicas' nonce checkers share a store. A nonce used
// at one is refused at the other; a replay at the same replica is refused
// by its own cache without asking the store; a store that cannot tell
// refuses (ErrReplayStore) and leaves neither the replica's cache nor the
// EK's quota charged, so the nonce works once the store is back.
func TestUseShared(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	key := bytes.Repeat([]byte{1}, 32)
	store := &fakeStore{}
	replica := func() *nonces {
		return &nonces{keys: [][]byte{key}, ttl: time.Minute, used: newUsedNonces(time.Minute, 100, 2, now), store: store}
	}
	a, b := replica(), replica()
	ek := [32]byte{9}
	bind := binding([]byte{0, 0xb, 1}, ek)
	ctx := context.Background()
	mint := func() []byte {
		raw, _, err := a.mint(now, bind)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}

	n1 := mint()
	if err := a.use(ctx, n1, ek, now); err != nil {
		t.Fatal(err)
	}
	if got := store.keys[replayKey(n1)]; got != time.Minute+2*maxClockSkew {
		t.Errorf("store TTL %s, want the nonce TTL plus twice the clock skew", got)
	}
	var ne *NonceError
	if err := b.use(ctx, n1, ek, now); !errors.Is(err, ErrNonceReplayed) || !errors.As(err, &ne) {
		t.Fatalf("replay at the other replica: %v", err)
	}
	calls := store.calls
	if err := a.use(ctx, n1, ek, now); !errors.Is(err, ErrNonceReplayed) || store.calls != calls {
		t.Fatalf("replay at the same replica: %v (store asked %d times more)", err, store.calls-calls)
	}

	// The store is down: refused, and not charged locally.
	store.err = errors.New("dial tcp 127.0.0.1:1: connection refused")
	n2 := mint()
	before := b.used.len()
	for range 3 { // more than the EK's quota of 2, were failures charged
		if err := b.use(ctx, n2, ek, now); !errors.Is(err, ErrReplayStore) || errors.Is(err, ErrNonceReplayed) {
			t.Fatalf("store down: %v", err)
		}
	}
	if b.used.len() != before {
		t.Fatalf("store down: the replica's cache grew from %d to %d", before, b.used.len())
	}
	// Back: the same nonce is judged once, then refused everywhere.
	store.err = nil
	if err := b.use(ctx, n2, ek, now); err != nil {
		t.Fatalf("store back: %v", err)
	}
	if err := a.use(ctx, n2, ek, now); !errors.Is(err, ErrNonceReplayed) {
		t.Fatalf("store back, replay at the other replica: %v", err)
	}

	// A canceled request is the context's error, not the store's.
	store.err = context.Canceled
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := replica().use(cctx, mint(), ek, now); !errors.Is(err, context.Canceled) || errors.Is(err, ErrReplayStore) {
		t.Fatalf("canceled: %v", err)
	}
}

// TestReplayKey: the store's key is 32 hex digits, one per nonce.
func TestReplayKey(t *testing.T) {
	k1, k2 := replayKey([]byte("nonce one")), replayKey([]byte("nonce two"))
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(k1) || k1 == k2 || k1 != replayKey([]byte("nonce one")) {
		t.Fatalf("keys %q %q", k1, k2)
	}
}

// TestForget: forget undoes use, in either generation, and leaves other
// entries and EKs alone.
func TestForget(t *testing.T) {
	t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	u := newUsedNonces(time.Minute, 10, 10, t0)
	ek, other := [32]byte{1}, [32]byte{2}
	for i, e := range [][32]byte{ek, ek, other} {
		if err := u.use([nonceRandLen]byte{byte(i)}, e, t0.Add(30*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	u.forget([nonceRandLen]byte{0}, ek)
	if u.len() != 2 || u.curEK[ek] != 1 || u.curEK[other] != 1 {
		t.Fatalf("after forget: %d entries, EK counts %d %d", u.len(), u.curEK[ek], u.curEK[other])
	}
	// After a rotation the entry is in the previous generation.
	if err := u.use([nonceRandLen]byte{9}, other, t0.Add(time.Minute+maxClockSkew)); err != nil {
		t.Fatal(err)
	}
	u.forget([nonceRandLen]byte{1}, ek)
	if _, ok := u.prevEK[ek]; ok || u.len() != 2 {
		t.Fatalf("after forget in the previous generation: %d entries, EK count %d", u.len(), u.prevEK[ek])
	}
	if err := u.use([nonceRandLen]byte{1}, ek, t0.Add(time.Minute+maxClockSkew)); err != nil {
		t.Fatalf("a forgotten nonce: %v", err)
	}
}
