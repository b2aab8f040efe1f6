// Package redisstore is a [service.ReplayStore] on Redis or Valkey: the
// replicas of an attestation service share it, so that a nonce used at one
// replica is refused at every other.
//
// A nonce is marked used with one command, SET key 1 NX PX ttl
// (https://redis.io/docs/latest/commands/set/): the server sets the key
// and its expiry atomically, and only if the key does not exist, so of any
// number of replicas using one nonce at once exactly one succeeds, and the
// key goes away by itself once the nonce could no longer be valid. Valkey
// speaks the same protocol and has the same command.
//
// # Security
//
// The store is trusted to keep a key until it expires: a server that loses
// or evicts a live key lets that nonce be used once more. Run it without
// eviction of these keys (maxmemory-policy noeviction, or a database of
// their own under volatile-* policies with no other volatile keys) and see
// docs/fleet.md. Keys are a fixed prefix and 32 hex digits the service
// derives from a verified nonce; no client byte reaches the server
// otherwise. The URL's password is never logged ([Store.String] redacts
// it). When the server cannot be reached, times out or refuses the write,
// [Store.Use] returns an error that is not service.ErrNonceReplayed, and
// the service refuses the submission (fail closed). Commands are not
// retried: a SET whose answer was lost may have been applied, and a retry
// would then call a first use a replay (still closed, but misleading); the
// host retries instead, after Retry-After.
package redisstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/codesignval/csv/attest/service"
)

// Defaults of [Options]: a store on the same network answers in well under
// a millisecond, so a second without an answer is an outage, not load.
const (
	DefaultDialTimeout  = time.Second
	DefaultReadTimeout  = 500 * time.Millisecond
	DefaultWriteTimeout = 500 * time.Millisecond
	DefaultKeyPrefix    = "csv:attest:nonce:"
)

// Options tune a Store. The zero value is the defaults; the URL's query
// parameters (dial_timeout, read_timeout, write_timeout, pool_size,
// pool_timeout, max_retries, ...: see go-redis's ParseURL) win over them.
type Options struct {
	// DialTimeout, ReadTimeout and WriteTimeout bound connecting and each
	// command (defaults above).
	DialTimeout, ReadTimeout, WriteTimeout time.Duration
	// PoolSize is the most connections open at once (default 4 per CPU,
	// the service's default MaxConcurrentVerifications: each
	// verification holds one connection for one command).
	PoolSize int
	// KeyPrefix goes before every key (default DefaultKeyPrefix). Services
	// that must not share used nonces yet share a server use different
	// prefixes or databases.
	KeyPrefix string
	// RootCAs, if not nil, are the roots a rediss:// server's certificate
	// must chain to (default: the system's).
	RootCAs *x509.CertPool
}

// Store is a used-nonce store on one Redis or Valkey server (or a primary
// behind a proxy or Sentinel-managed address).
type Store struct {
	c      *redis.Client
	prefix string
	shown  string // the URL, password redacted
}

var _ service.ReplayStore = (*Store)(nil)

// ErrURL is wrapped by New's errors about the URL.
var ErrURL = errors.New("redisstore: invalid URL")

// New returns a store for rawURL: redis://[user[:password]@]host[:port][/db]
// or rediss:// for TLS (at least TLS 1.2), or unix:///path/to/socket. The
// password and ACL user come from the URL. New does not connect: see
// [Store.Ping].
func New(rawURL string, o Options) (*Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url's errors quote the URL, password included.
		return nil, fmt.Errorf("%w: not a URL", ErrURL)
	}
	shown := u.Redacted()
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %s", ErrURL, shown, redactErr(err, u))
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.DialTimeout, DefaultDialTimeout)
	def(&o.ReadTimeout, DefaultReadTimeout)
	def(&o.WriteTimeout, DefaultWriteTimeout)
	def(&opt.DialTimeout, o.DialTimeout)
	def(&opt.ReadTimeout, o.ReadTimeout)
	def(&opt.WriteTimeout, o.WriteTimeout)
	if opt.PoolSize == 0 {
		opt.PoolSize = o.PoolSize
	}
	if opt.PoolSize == 0 {
		opt.PoolSize = 4 * runtime.GOMAXPROCS(0)
	}
	if opt.PoolTimeout == 0 {
		opt.PoolTimeout = opt.ReadTimeout + opt.WriteTimeout
	}
	// Never retried, whatever the URL's max_retries says (see the
	// package doc): a SET NX retried after a lost answer finds its own
	// key and reports a replay.
	opt.MaxRetries = -1
	opt.ContextTimeoutEnabled = true
	opt.DialerRetries = 1
	opt.DisableIdentity = true // no CLIENT SETINFO round trip on each connection
	if opt.TLSConfig != nil {
		opt.TLSConfig.MinVersion = max(opt.TLSConfig.MinVersion, tls.VersionTLS12)
		if o.RootCAs != nil {
			opt.TLSConfig.RootCAs = o.RootCAs
		}
	} else if o.RootCAs != nil {
		return nil, fmt.Errorf("%w: %s: CA certificates given for a server without TLS (use rediss://)", ErrURL, shown)
	}
	prefix := o.KeyPrefix
	if prefix == "" {
		prefix = DefaultKeyPrefix
	}
	quietOnce.Do(func() { redis.SetLogger(quiet{}) })
	return &Store{c: redis.NewClient(opt), prefix: prefix, shown: shown}, nil
}

// quiet drops go-redis's own log lines, which it writes to standard error
// by default, through a process-wide logger: they would break the service's
// JSON log, and every error they report reaches the caller of Use or Ping
// (and so the decision log) anyway.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

var quietOnce sync.Once

// redactErr is err's text without the URL's password.
func redactErr(err error, u *url.URL) string {
	s := err.Error()
	if p, ok := u.User.Password(); ok && p != "" {
		s = strings.ReplaceAll(s, p, "xxxxx")
	}
	return s
}

// String returns the store's URL with its password redacted.
func (s *Store) String() string { return s.shown }

// Ping checks that the server answers (and that the URL's credentials and
// database are accepted).
func (s *Store) Ping(ctx context.Context) error {
	if err := s.c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redisstore: %s: %w", s.shown, err)
	}
	return nil
}

// Close closes the store's connections.
func (s *Store) Close() error { return s.c.Close() }

// Use marks key used for ttl with SET prefix+key 1 NX PX ttl. It returns
// nil if the key was set, an error wrapping service.ErrNonceReplayed if it
// existed, and any other error when the server did not answer yes or no.
func (s *Store) Use(ctx context.Context, key string, ttl time.Duration) error {
	if !validKey(key) {
		return fmt.Errorf("redisstore: key %q is not 32 lowercase hex digits", key)
	}
	if ttl < time.Millisecond {
		return fmt.Errorf("redisstore: TTL %s is under a millisecond", ttl)
	}
	// OK when set; a nil reply when the key exists.
	err := s.c.Do(ctx, "SET", s.prefix+key, "1", "NX", "PX", strconv.FormatInt(ttl.Milliseconds(), 10)).Err()
	switch {
	case errors.Is(err, redis.Nil):
		return fmt.Errorf("redisstore: %w", service.ErrNonceReplayed)
	case err != nil:
		return fmt.Errorf("redisstore: %s: SET NX PX: %w", s.shown, err)
	}
	return nil
}

func validKey(k string) bool {
	if len(k) != 32 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
