package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/codesignval/csv/attest/service"
	"github.com/codesignval/csv/attest/service/redisstore"
	"github.com/codesignval/csv/attest/service/redisstore/redistest"
)

func newStore(t *testing.T, url string, o redisstore.Options) *redisstore.Store {
	t.Helper()
	s, err := redisstore.New(url, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func key(i int) string { return fmt.Sprintf("%032x", i) }

// TestUse: a key is set once, with its expiry, by SET NX PX on a real
// server; the second use is ErrNonceReplayed; the key is gone after its
// TTL, and then usable again (the service's nonce is by then expired).
func TestUse(t *testing.T) {
	srv := redistest.New(t)
	s := newStore(t, srv.URL(), redisstore.Options{})
	ctx := context.Background()
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Use(ctx, key(1), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.Use(ctx, key(1), time.Minute); !errors.Is(err, service.ErrNonceReplayed) {
		t.Fatalf("second use: %v", err)
	}
	if err := s.Use(ctx, key(2), time.Minute); err != nil {
		t.Fatalf("another key: %v", err)
	}
	// The key as the server holds it: prefix, value, TTL.
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer c.Close()
	pttl, err := c.PTTL(ctx, redisstore.DefaultKeyPrefix+key(1)).Result()
	if err != nil || pttl <= 50*time.Second || pttl > time.Minute {
		t.Fatalf("PTTL %s %v, want just under a minute", pttl, err)
	}
	// Expiry.
	if err := s.Use(ctx, key(3), 150*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := s.Use(ctx, key(3), 150*time.Millisecond); !errors.Is(err, service.ErrNonceReplayed) {
		t.Fatalf("before expiry: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		time.Sleep(100 * time.Millisecond)
		err := s.Use(ctx, key(3), time.Minute)
		if err == nil {
			break
		}
		if !errors.Is(err, service.ErrNonceReplayed) || time.Now().After(deadline) {
			t.Fatalf("the key did not expire: %v", err)
		}
	}
	// Keys a client could choose are refused before reaching the server.
	for _, k := range []string{"", "x", strings.Repeat("A", 32), key(1) + "0", "*" + key(1)[1:]} {
		if err := s.Use(ctx, k, time.Minute); err == nil || errors.Is(err, service.ErrNonceReplayed) {
			t.Errorf("key %q: %v", k, err)
		}
	}
}

// TestUseConcurrent: of many uses of one key at once, from two stores (two
// replicas' connection pools), exactly one succeeds.
func TestUseConcurrent(t *testing.T) {
	srv := redistest.New(t)
	a, b := newStore(t, srv.URL(), redisstore.Options{}), newStore(t, srv.URL(), redisstore.Options{})
	for k := range 20 {
		var ok, replayed atomic.Int32
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := a
				if i%2 == 1 {
					s = b
				}
				switch err := s.Use(context.Background(), key(100+k), time.Minute); {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, service.ErrNonceReplayed):
					replayed.Add(1)
				default:
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 1 || replayed.Load() != 15 {
			t.Fatalf("key %d: %d uses succeeded, %d refused", k, ok.Load(), replayed.Load())
		}
	}
}

// TestFailClosed: with the server down, Use fails within its timeouts with
// an error that is not a replay (the service refuses the submission); with
// the server back, it works again without a new Store.
func TestFailClosed(t *testing.T) {
	srv := redistest.New(t)
	s := newStore(t, srv.URL(), redisstore.Options{})
	ctx := context.Background()
	if err := s.Use(ctx, key(1), time.Minute); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	start := time.Now()
	err := s.Use(ctx, key(2), time.Minute)
	if err == nil || errors.Is(err, service.ErrNonceReplayed) {
		t.Fatalf("server down: %v", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("server down: Use took %s", took)
	}
	if err := s.Ping(ctx); err == nil {
		t.Error("server down: Ping succeeded")
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := s.Use(ctx, key(2), time.Minute); err != nil {
		t.Fatalf("server back: %v", err)
	}
}

// TestAuth: the password and ACL user come from the URL; a wrong one is an
// error that does not show it, and String redacts it.
func TestAuth(t *testing.T) {
	srv := redistest.New(t, "--requirepass", "s3cret-pw", "--user", "csv", "on", ">csv-pw", "resetchannels", "-@all", "~csv:attest:nonce:*", "+set", "+ping", "+hello", "+auth")
	ctx := context.Background()
	u := "redis://:s3cret-pw@" + srv.Addr()
	s := newStore(t, u, redisstore.Options{})
	if err := s.Use(ctx, key(1), time.Minute); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(s.String(), "s3cret") {
		t.Errorf("String shows the password: %s", s)
	}
	// An ACL user limited to the store's commands and keys.
	acl := newStore(t, "redis://csv:csv-pw@"+srv.Addr(), redisstore.Options{})
	if err := acl.Use(ctx, key(1), time.Minute); !errors.Is(err, service.ErrNonceReplayed) {
		t.Fatalf("ACL user: %v", err)
	}
	outside := newStore(t, "redis://csv:csv-pw@"+srv.Addr(), redisstore.Options{KeyPrefix: "other:"})
	if err := outside.Use(ctx, key(1), time.Minute); err == nil || errors.Is(err, service.ErrNonceReplayed) {
		t.Fatalf("ACL user outside its keys: %v", err)
	}
	bad := newStore(t, "redis://:wrong-pw-123@"+srv.Addr(), redisstore.Options{})
	for _, err := range []error{bad.Ping(ctx), bad.Use(ctx, key(2), time.Minute)} {
		if err == nil || errors.Is(err, service.ErrNonceReplayed) || strings.Contains(err.Error(), "wrong-pw-123") {
			t.Errorf("wrong password: %v", err)
		}
	}
}

// TestNewErrors: URLs that cannot be used are refused without showing the
// password.
func TestNewErrors(t *testing.T) {
	for _, u := range []string{"http://:pw-abc@127.0.0.1", "redis://:pw-abc@127.0.0.1:6379/notadb", "redis://:pw-abc@127.0.0.1/0?bogus=1", "::"} {
		_, err := redisstore.New(u, redisstore.Options{})
		if !errors.Is(err, redisstore.ErrURL) || strings.Contains(err.Error(), "pw-abc") {
			t.Errorf("%s: %v", u, err)
		}
	}
	s, err := redisstore.New("rediss://user:pw-abc@cache.example:6380/2", redisstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.String(); got != "rediss://user:xxxxx@cache.example:6380/2" {
		t.Errorf("String: %s", got)
	}
}

// BenchmarkUse is the store's cost per submission: one SET NX PX round
// trip to a redis-server on loopback, one at a time and from many
// goroutines at once.
func BenchmarkUse(b *testing.B) {
	srv := redistest.New(b)
	s, err := redisstore.New(srv.URL(), redisstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	var n atomic.Int64
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if err := s.Use(ctx, key(int(n.Add(1))), time.Minute); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := s.Use(ctx, key(int(n.Add(1))), time.Minute); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
