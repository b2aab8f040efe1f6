// Package service is the attestation service: an HTTP API that hosts
// attest to, which judges their measured boot with package attest and, when
// every check passes, issues a credential sealed to the host's TPM.
//
// A host first asks for a nonce (POST /v1/nonce), bound to its AK and EK;
// quotes its PCRs with it; and submits its evidence (POST /v1/attest): the
// event log, the quotes, its AK's TPMT_PUBLIC (and an AK certificate, if
// it has one), its EK's TPMT_PUBLIC or certificate, and the nonce. The
// service checks the nonce, the EK, the evidence ([attest.Verify]) and the
// policy ([attest.Evaluate]), logs the decision as one JSON line, and
// answers with every check and the verified claims. When the host is
// trusted the answer carries a [Credential]: a fresh secret wrapped with
// TPM2_MakeCredential to the EK and the AK's Name, and the payload (a
// signed token or an AK certificate stating the claims) encrypted under it.
//
// The service keeps no state a request depends on, beyond a per-replica
// cache of used nonces: nonces are MAC'd (see the nonce format in nonce.go)
// so any replica with the same nonce key checks them. Replicas that must
// refuse each other's used nonces share a [ReplayStore] (Config.ReplayStore;
// see [Config.NonceKeys] for what happens without one).
//
// # Security
//
// Everything in a request is untrusted. Bodies are capped
// (Config.MaxBodyBytes), and so are the bodies in flight together
// (Config.MaxBodyBytesInFlight, reserved as a body's buffer grows), and
// decoded strictly (unknown fields, trailing data and oversized fields
// are refused); each request's work is recovered from panics. A nonce is
// marked used only once its MAC and age verified and its EK is trusted,
// and each EK has a quota of used nonces (Config.MaxUsedNoncesPerEK), so
// strangers cannot fill the used-nonce cache and no one EK can fill it
// for the others. The service trusts its configuration: the policies, the
// EK roots and allowlist, the AK roots, the nonce keys and the CA key. It
// fails closed: no credential unless every check passed.
//
// What the credential proves rests on the EK: MakeCredential protects the
// secret with the EK's public key and binds it to the AK's Name, and a TPM
// releases it only to an ActivateCredential that presents both its EK and
// a loaded object of that Name. The AK must be a restricted signing key
// fixed to its TPM and created in it (a TPM cannot load such a key from
// outside, and a public-only object cannot be authorised for
// ActivateCredential), so the credential reaches only the TPM that holds
// both the EK and the AK that signed the quotes. That is worth something
// only if the EK is a genuine TPM's: the service requires an EK certificate
// that chains to a configured root, or an EK on the allowlist, unless
// Config.TrustAnyEKUnsafe is set (a software "TPM" could then read its own
// credential). A man in the middle who swaps in its own EK must present a
// trusted EK, whose TPM does not hold the host's AK; one who replays a
// submission gets a credential sealed to the original host.
package service

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/codesignval/csv/attest"
	"github.com/codesignval/csv/attest/eventlog"
	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/signing"
)

// Policy is what the service judges with: an attestation policy and the
// code integrity policy set its boot components are judged by (nil when
// the policy does not judge them).
type Policy struct {
	Attestation *attest.Policy
	CI          *cipolicy.Set
}

// validate refuses a policy the service cannot judge with.
func (p *Policy) validate() error {
	switch {
	case p == nil || p.Attestation == nil:
		return errors.New("service: no attestation policy")
	case p.Attestation.BootComponents == attest.JudgeCIPolicy && p.CI == nil:
		return fmt.Errorf("service: the attestation policy %q judges boot components (boot_components: %s, the default) but no code integrity policy was given (ci_policies: or --ci-policy; or set boot_components: %s in the policy)",
			p.Attestation.Name, attest.JudgeCIPolicy, attest.Ignore)
	}
	return nil
}

// Config configures a Server. LoadPolicy, CA and CAKey are required, and
// a way to trust EKs (EKRoots, EKAllowlist or TrustAnyEKUnsafe); every
// other zero value takes the default documented on the field.
type Config struct {
	// LoadPolicy returns the policy to judge with. New calls it once and
	// Reload again: it should read the policy files anew.
	LoadPolicy func() (*Policy, error)

	// PCRs are what hosts must quote, one quote per bank (default
	// DefaultPCRs). Every PCR selected must be covered by a verified quote.
	PCRs []PCRSelection
	// AllowSHA1Unsafe accepts SHA-1 quotes, SHA1 banks and SHA-1 AK names
	// (attest.VerifyOptions.AllowSHA1Unsafe).
	AllowSHA1Unsafe bool

	// AKRoots and AKIntermediates check AK certificates. Without an AK
	// certificate, the AK is trusted as given: the credential then reaches
	// it only if it lives in the TPM of a trusted EK.
	AKRoots, AKIntermediates []*signing.Certificate
	// EKRoots and EKIntermediates check EK certificates (TPM
	// manufacturers' CAs).
	EKRoots, EKIntermediates []*x509.Certificate
	// EKAllowlist holds the EKs trusted without a certificate:
	// EKKeySHA256 of their public keys (an enrolled fleet).
	EKAllowlist [][32]byte
	// TrustAnyEKUnsafe trusts any EK: a host without a genuine TPM can
	// then read its own credential. For labs and tests.
	TrustAnyEKUnsafe bool

	// CA and CAKey issue the credentials' payloads.
	CA    *x509.Certificate
	CAKey crypto.Signer
	// CredentialFormat is FormatToken (default), FormatX509 or FormatEAR.
	CredentialFormat CredentialFormat
	// ClaimsOID is the X.509 extension of the claims (required for
	// FormatX509).
	ClaimsOID asn1.ObjectIdentifier
	// CredentialLifetime is how long a credential is valid (default 1h,
	// never past the CA's own expiry).
	CredentialLifetime time.Duration
	// TokenIssuer is the tokens' and EARs' "iss" (default the CA's
	// common name).
	TokenIssuer string
	// VerifierBuild is the EARs' "ear.verifier-id" build: csv's name and
	// version (default "csv").
	VerifierBuild string

	// NonceKeys are HMAC keys of at least 32 bytes: the first mints
	// nonces, all are accepted (to rotate, prepend the new key and drop
	// the old one a NonceTTL later). Every replica needs the same keys.
	// Empty: a random key, which only works with one replica.
	//
	// Replays across replicas: without a ReplayStore a nonce is
	// single-use per replica (each keeps its own cache of used nonces, in
	// memory), so a submission replayed to another replica, or to a
	// restarted one, within NonceTTL is judged again. It gains the
	// replayer nothing: the nonce is bound to the AK and EK in its MAC, so
	// it is useless with another host's keys, and the new credential is
	// sealed to the original host's EK and AK. Where a duplicate
	// credential matters, give the replicas a shared ReplayStore.
	NonceKeys [][]byte
	// ReplayStore, if not nil, is the used-nonce store the replicas share
	// (Redis or Valkey: package redisstore): a nonce used at any replica
	// is refused at every other. Each replica still keeps its own cache,
	// asked first: its caps (MaxUsedNonces, MaxUsedNoncesPerEK) bound what
	// one replica enters in the store. When the store cannot tell (it is
	// unreachable, times out or refuses the write), the submission is
	// refused with 503 and Retry-After and the decision log says why
	// (fail closed). Nil: this replica's cache only, enough for one
	// replica.
	ReplayStore ReplayStore
	// NonceTTL is how long a nonce is valid (default 2 minutes).
	NonceTTL time.Duration
	// MaxUsedNonces caps the used-nonce cache (default 1<<20 entries,
	// some tens of megabytes). When full, submissions are refused with 503
	// until entries expire (fail closed: a nonce is never forgotten while
	// valid): size it above twice the peak attestations per NonceTTL.
	// Only submissions whose EK is trusted are entered (the nonce's MAC,
	// its age and the EK are checked first), so a stranger cannot fill it.
	MaxUsedNonces int
	// MaxUsedNoncesPerEK caps each EK's share of that cache (default 64):
	// an EK with that many nonces used in the last one to two NonceTTLs
	// (plus clock skew) is refused with 429 and Retry-After, and no other
	// EK is. EKs are public (an EK certificate is no secret), so whoever
	// knows a trusted EK can use up that EK's share, but no other's. Load
	// generators that attest thousands of times a second with a few EKs
	// need it raised.
	MaxUsedNoncesPerEK int

	// MaxBodyBytes caps a request body (default 4 MiB: real event logs
	// are tens of kilobytes; Windows' can reach a few hundred). Nonce
	// requests are capped at 4 KiB.
	MaxBodyBytes int64
	// MaxBodyBytesInFlight caps the attestation request bodies being read
	// or judged at once, in bytes (default 16 × MaxBodyBytes; at least
	// MaxBodyBytes). A request's buffer starts at 64 KiB at most and
	// doubles as bytes arrive (never past the declared length); each
	// allocation is reserved first, waiting up to QueueTimeout for room
	// (then 503 with Retry-After), and all is given back when the request
	// is answered. A client that declares a large body and sends little
	// holds little: idle clients need a thousand connections, not sixteen,
	// to fill the default budget. With the defaults at most 64 MiB of
	// bodies are held at once, whatever the clients send; what is decoded
	// from them (less than the bodies) comes on top.
	MaxBodyBytesInFlight int64
	// MaxConcurrentVerifications caps the verifications in progress
	// (default 4 per CPU). A request that finds no slot within QueueTimeout
	// (default 1s; negative: do not wait) gets 503 with Retry-After.
	MaxConcurrentVerifications int
	QueueTimeout               time.Duration
	// VerificationTimeout caps how long one submission may be judged, from
	// the moment it has its verification slot (default 10s; a real
	// submission takes about a millisecond). Past it, or once the client
	// has gone, the verification stops: 503, no credential, and the
	// decision log says "timeout" or "canceled".
	VerificationTimeout time.Duration
	// HTTP server timeouts, used by Serve (defaults: 5s, 30s, 30s, 120s),
	// and how long Serve waits for requests in flight when shutting down
	// (default 20s).
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout, ShutdownTimeout time.Duration
	// TLS, if not nil, makes Serve serve HTTPS.
	TLS *tls.Config

	// Logger receives the decision log, one JSON line per decision
	// (default: JSON on standard error).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Server is the attestation service.
type Server struct {
	cfg      Config
	sels     []PCRSelection
	algs     []eventlog.HashAlg
	policy   atomic.Pointer[Policy]
	nonces   *nonces
	issuer   *issuer
	trust    atomic.Pointer[trustState]
	eks      *ekCache
	sem      chan struct{}
	bodies   *semaphore.Weighted
	log      *slog.Logger
	draining atomic.Bool
	handler  http.Handler
	rand     io.Reader
	// testHook, if set, runs in each verification, while it holds its
	// slot, with the verification's context (tests use it to fill the
	// slots, and to let a deadline pass or a client go).
	testHook func(context.Context)
}

// ErrConfig is wrapped by the errors of [New] and [Server.ReloadTrust] about
// a Config or a Trust that cannot be used (a missing policy loader, a
// negative limit, no way to trust an EK, ...).
var ErrConfig = errors.New("service: invalid configuration")

// New checks the configuration, loads the policy and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.LoadPolicy == nil {
		return nil, signing.Errorf(ErrConfig, "service: Config.LoadPolicy is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	defDur := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	defDur(&cfg.NonceTTL, 2*time.Minute)
	defDur(&cfg.CredentialLifetime, time.Hour)
	defDur(&cfg.QueueTimeout, time.Second)
	defDur(&cfg.VerificationTimeout, 10*time.Second)
	defDur(&cfg.ReadHeaderTimeout, 5*time.Second)
	defDur(&cfg.ReadTimeout, 30*time.Second)
	defDur(&cfg.WriteTimeout, 30*time.Second)
	defDur(&cfg.IdleTimeout, 120*time.Second)
	defDur(&cfg.ShutdownTimeout, 20*time.Second)
	if cfg.MaxUsedNonces == 0 {
		cfg.MaxUsedNonces = 1 << 20
	}
	if cfg.MaxUsedNoncesPerEK == 0 {
		cfg.MaxUsedNoncesPerEK = 64
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 4 << 20
	}
	if cfg.MaxBodyBytesInFlight == 0 && cfg.MaxBodyBytes > 0 {
		cfg.MaxBodyBytesInFlight = 16 * cfg.MaxBodyBytes
	}
	if cfg.MaxConcurrentVerifications == 0 {
		cfg.MaxConcurrentVerifications = 4 * runtime.GOMAXPROCS(0)
	}
	if cfg.PCRs == nil {
		cfg.PCRs = DefaultPCRs()
	}
	switch {
	case cfg.NonceTTL < 0 || cfg.MaxUsedNonces < 0 || cfg.MaxUsedNoncesPerEK < 0 || cfg.MaxBodyBytes < 0 ||
		cfg.MaxBodyBytesInFlight < 0 || cfg.MaxConcurrentVerifications < 0 || cfg.VerificationTimeout < 0:
		return nil, signing.Errorf(ErrConfig, "service: negative limit in Config")
	case cfg.MaxBodyBytesInFlight < cfg.MaxBodyBytes:
		return nil, signing.Errorf(ErrConfig, "service: MaxBodyBytesInFlight (%d) is below MaxBodyBytes (%d): a body of the largest size could never be read",
			cfg.MaxBodyBytesInFlight, cfg.MaxBodyBytes)
	}
	ts, err := newTrustState(Trust{AKRoots: cfg.AKRoots, AKIntermediates: cfg.AKIntermediates, EKRoots: cfg.EKRoots,
		EKIntermediates: cfg.EKIntermediates, EKAllowlist: cfg.EKAllowlist, TrustAnyEKUnsafe: cfg.TrustAnyEKUnsafe})
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, rand: rand.Reader, sem: make(chan struct{}, cfg.MaxConcurrentVerifications), eks: newEKCache(1 << 14),
		bodies: semaphore.NewWeighted(cfg.MaxBodyBytesInFlight)}
	s.trust.Store(ts)
	if s.sels, s.algs, err = parseSelections(cfg.PCRs); err != nil {
		return nil, err
	}
	for _, a := range s.algs {
		if a == eventlog.SHA1 && !cfg.AllowSHA1Unsafe {
			return nil, signing.Errorf(ErrConfig, "service: the PCR selection asks for the SHA1 bank, whose quotes are refused without AllowSHA1Unsafe")
		}
	}
	keys := cfg.NonceKeys
	if len(keys) == 0 {
		k := make([]byte, 32)
		if _, err := rand.Read(k); err != nil {
			return nil, err
		}
		keys = [][]byte{k}
	}
	for i, k := range keys {
		if len(k) < minNonceKey {
			return nil, signing.Errorf(ErrConfig, "service: nonce key %d is %d bytes (at least %d)", i+1, len(k), minNonceKey)
		}
	}
	s.nonces = &nonces{keys: keys, ttl: cfg.NonceTTL, used: newUsedNonces(cfg.NonceTTL, cfg.MaxUsedNonces, cfg.MaxUsedNoncesPerEK, cfg.Now()),
		store: cfg.ReplayStore}
	if s.issuer, err = newIssuer(cfg.CA, cfg.CAKey, cfg.CredentialFormat, cfg.CredentialLifetime, cfg.TokenIssuer, cfg.ClaimsOID, cfg.Now()); err != nil {
		return nil, err
	}
	if s.issuer.build = cfg.VerifierBuild; s.issuer.build == "" {
		s.issuer.build = "csv"
	}
	p, err := cfg.LoadPolicy()
	if err != nil {
		return nil, err
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	s.policy.Store(p)
	mux := http.NewServeMux()
	mux.HandleFunc(PathNonce, s.handleNonce)
	mux.HandleFunc(PathAttest, s.handleAttest)
	mux.HandleFunc(PathHealth, s.handleHealth)
	s.handler = s.recoverer(mux)
	return s, nil
}

// Handler returns the HTTP handler: the API, without the timeouts Serve
// sets on its http.Server.
func (s *Server) Handler() http.Handler { return s.handler }

// Policy returns the policy in use.
func (s *Server) Policy() *Policy { return s.policy.Load() }

// Reload loads the policy again with Config.LoadPolicy and, if it is
// valid, uses it for the requests that start from then on; requests in
// progress finish with the policy they started with. On error the policy
// in use stays, and Reload returns the error.
func (s *Server) Reload() error {
	p, err := s.cfg.LoadPolicy()
	if err == nil {
		err = p.validate()
	}
	if err != nil {
		old := s.policy.Load()
		s.log.Error("policy reload refused: the policy in use stays", slog.String("error", err.Error()),
			slog.String("policy", old.Attestation.Name), slog.String("policy_sha256", hex.EncodeToString(old.Attestation.SHA256[:])))
		return err
	}
	s.policy.Store(p)
	s.log.Info("policy reloaded", slog.String("policy", p.Attestation.Name),
		slog.String("policy_sha256", hex.EncodeToString(p.Attestation.SHA256[:])), slog.Int("ci_policies", ciCount(p)))
	return nil
}

// Trust is what the service trusts EKs and AKs with (see the Config fields
// of the same names).
type Trust struct {
	AKRoots, AKIntermediates []*signing.Certificate
	EKRoots, EKIntermediates []*x509.Certificate
	EKAllowlist              [][32]byte
	TrustAnyEKUnsafe         bool
}

// trustState is a Trust ready for requests.
type trustState struct {
	ek                       *ekTrust
	akRoots, akIntermediates []*signing.Certificate
	eks, ekRoots, akRootsN   int
}

func newTrustState(t Trust) (*trustState, error) {
	if len(t.EKRoots) == 0 && len(t.EKAllowlist) == 0 && !t.TrustAnyEKUnsafe {
		return nil, signing.Errorf(ErrConfig, "service: no way to trust an EK: give EK roots (TPM manufacturers' CAs), an EK allowlist, or TrustAnyEKUnsafe")
	}
	ek := &ekTrust{roots: x509.NewCertPool(), intermediates: x509.NewCertPool(), nroots: len(t.EKRoots),
		allow: map[[32]byte]bool{}, anyUnsafe: t.TrustAnyEKUnsafe}
	for _, c := range t.EKRoots {
		ek.roots.AddCert(c)
	}
	for _, c := range t.EKIntermediates {
		ek.intermediates.AddCert(c)
	}
	for _, k := range t.EKAllowlist {
		ek.allow[k] = true
	}
	return &trustState{ek: ek, akRoots: slices.Clone(t.AKRoots), akIntermediates: slices.Clone(t.AKIntermediates),
		eks: len(ek.allow), ekRoots: len(t.EKRoots), akRootsN: len(t.AKRoots)}, nil
}

// ReloadTrust replaces the EK roots and allowlist and the AK roots (an EK
// taken off the allowlist is refused from then on: no restart needed); the
// requests in progress finish with what they started with. A Trust that
// leaves no way to trust an EK is refused, and the one in use stays.
func (s *Server) ReloadTrust(t Trust) error {
	ts, err := newTrustState(t)
	if err != nil {
		s.log.Error("trust reload refused: the trust in use stays", slog.String("error", err.Error()))
		return err
	}
	s.trust.Store(ts)
	s.log.Info("trust reloaded", slog.Int("ek_roots", ts.ekRoots), slog.Int("ek_allowlist", ts.eks), slog.Int("ak_roots", ts.akRootsN))
	return nil
}

func ciCount(p *Policy) int {
	if p.CI == nil {
		return 0
	}
	return len(p.CI.Policies())
}

// Serve serves the API on ln (HTTPS if Config.TLS is set) with the
// configured timeouts until ctx is done, then shuts down gracefully: /healthz
// turns 503, new connections are refused, and requests in progress get up
// to Config.ShutdownTimeout to finish. It returns nil after a graceful
// shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	if s.cfg.TLS != nil {
		tc := s.cfg.TLS.Clone()
		if tc.MinVersion < tls.VersionTLS12 {
			tc.MinVersion = tls.VersionTLS12
		}
		ln = tls.NewListener(ln, tc)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("serving", slog.String("addr", ln.Addr().String()), slog.Bool("tls", s.cfg.TLS != nil))
	select {
	case err := <-errc:
		return fmt.Errorf("service: %w", err)
	case <-ctx.Done():
	}
	s.draining.Store(true)
	s.log.Info("shutting down: finishing requests in progress", slog.String("timeout", s.cfg.ShutdownTimeout.String()))
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		return fmt.Errorf("service: shutting down: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("service: %w", err)
	}
	s.log.Info("shut down")
	return nil
}

// recoverer turns a panic in a handler into a 500 and a log line.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("internal error", slog.String("path", r.URL.Path), slog.String("remote_addr", r.RemoteAddr),
					slog.String("panic", fmt.Sprint(v)), slog.String("stack", string(debug.Stack())))
				writeJSON(w, http.StatusInternalServerError, ErrorResponse{Error: "internal error"})
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, ErrorResponse{Error: "use GET"})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if s.draining.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "shutting down\n")
		return
	}
	io.WriteString(w, "ok\n")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error: encoding the response"}`)
	}
	writeRaw(w, status, b)
}

func writeRaw(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// requestError is a request refused before it was judged.
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

// Body limits.
const (
	// maxNonceBody caps a nonce request's body: an AK Name and an EK
	// digest in hex take a few hundred bytes.
	maxNonceBody = 4 << 10
	// initialBodyBuffer is the most a body's buffer starts at, whatever
	// Content-Length says: it grows as bytes arrive.
	initialBodyBuffer = 64 << 10
)

// checkPost checks a request's method and type, and its declared length
// against limit.
func checkPost(w http.ResponseWriter, r *http.Request, limit int64) *requestError {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		return &requestError{http.StatusMethodNotAllowed, "use POST"}
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return &requestError{http.StatusUnsupportedMediaType, "the body must be application/json"}
		}
	}
	if r.ContentLength > limit {
		return &requestError{http.StatusRequestEntityTooLarge, fmt.Sprintf("body of %d bytes, over the limit of %d", r.ContentLength, limit)}
	}
	return nil
}

// readBody reads a request's body, at most limit bytes, into a buffer
// that grows as bytes arrive (see readGrowing), each growth reserved first
// with reserve (nil: no budget).
func readBody(w http.ResponseWriter, r *http.Request, limit int64, reserve func(int64) bool) ([]byte, *requestError) {
	hint := limit
	if r.ContentLength >= 0 {
		hint = min(r.ContentLength, limit)
	}
	b, err := readGrowing(http.MaxBytesReader(w, r.Body, limit), hint, reserve)
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, &requestError{http.StatusRequestEntityTooLarge, fmt.Sprintf("body over the limit of %d bytes", limit)}
	case errors.Is(err, errNoBodyBudget):
		return nil, &requestError{http.StatusServiceUnavailable, "busy: too many request bodies in flight, retry later"}
	case err != nil:
		return nil, &requestError{http.StatusBadRequest, "reading the body: " + err.Error()}
	}
	return b, nil
}

// errNoBodyBudget: the budget of body bytes in flight has no room for a
// body's next bytes.
var errNoBodyBudget = errors.New("service: no room in the budget of request bodies in flight")

// readGrowing reads r to its end. The buffer starts at initialBodyBuffer
// bytes at most and doubles as it fills, up to hint+1 bytes (hint is what
// the client declared, or the cap): a client that declares a large body
// and sends little costs little, and holds little of the budget, since
// every allocation's size is first reserved with reserve (when not nil;
// on false, errNoBodyBudget). r must stop by itself (MaxBytesReader).
func readGrowing(r io.Reader, hint int64, reserve func(int64) bool) ([]byte, error) {
	want := int(min(max(hint, 0), math.MaxInt32)) + 1 // +1: room to see the end
	first := min(want, initialBodyBuffer)
	if reserve != nil && !reserve(int64(first)) {
		return nil, errNoBodyBudget
	}
	buf := make([]byte, 0, first)
	for {
		if len(buf) == cap(buf) {
			n := min(2*cap(buf), want)
			if n <= cap(buf) { // more than declared: the reader will stop it
				n = cap(buf) + 512
			}
			if reserve != nil && !reserve(int64(n-cap(buf))) {
				return nil, errNoBodyBudget
			}
			nb := make([]byte, len(buf), n) // exactly n: append would round up
			copy(nb, buf)
			buf = nb
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// decode reads a small JSON body strictly into v (the nonce request; the
// attestation request has its own decoder, decodeAttestRequest).
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) *requestError {
	if e := checkPost(w, r, maxNonceBody); e != nil {
		return e
	}
	body, e := readBody(w, r, maxNonceBody, nil)
	if e != nil {
		return e
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); !errors.Is(terr, io.EOF) {
			err = errTrailing
		}
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, io.EOF):
		return &requestError{http.StatusBadRequest, errEmptyBody.Error()}
	case errors.Is(err, errTrailing):
		return &requestError{http.StatusBadRequest, err.Error()}
	}
	return &requestError{http.StatusBadRequest, "malformed JSON: " + err.Error()}
}

// decodeAttest reads an attestation request, its buffer's bytes reserved
// with reserve.
func (s *Server) decodeAttest(w http.ResponseWriter, r *http.Request, reserve func(int64) bool) (*AttestRequest, *requestError) {
	body, e := readBody(w, r, s.cfg.MaxBodyBytes, reserve)
	if e != nil {
		return nil, e
	}
	req, err := decodeAttestRequest(body)
	if err != nil {
		return nil, &requestError{http.StatusBadRequest, err.Error()}
	}
	return req, nil
}

func (s *Server) handleNonce(w http.ResponseWriter, r *http.Request) {
	var req NonceRequest
	if e := s.decode(w, r, &req); e != nil {
		writeJSON(w, e.status, ErrorResponse{Error: e.msg})
		return
	}
	akName, err1 := hex.DecodeString(req.AKName)
	ekKey, err2 := hex.DecodeString(req.EKKeySHA256)
	switch {
	case err1 != nil || len(akName) < 2+20 || len(req.AKName) > maxNameHexBytes:
		writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: "ak_name: want the AK's TPM Name in hex"})
		return
	case err2 != nil || len(ekKey) != 32:
		writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: "ek_key_sha256: want 64 hex digits"})
		return
	}
	now := s.cfg.Now()
	raw, id, err := s.nonces.mint(now, binding(akName, [32]byte(ekKey)))
	if err != nil {
		s.log.Error("minting a nonce", slog.String("error", err.Error()))
		writeJSON(w, http.StatusInternalServerError, ErrorResponse{Error: "internal error"})
		return
	}
	writeJSON(w, http.StatusOK, NonceResponse{Nonce: encodeNonce(raw), NonceID: id,
		ExpiresAt: now.Add(s.cfg.NonceTTL).UTC(), PCRSelections: s.sels})
}

// bodyReservation is what one request holds of the budget of body bytes
// in flight (Config.MaxBodyBytesInFlight): its buffer's size, reserved as
// the buffer grows with the bytes that arrive, so that a client that
// declares a large body and sends little holds little.
type bodyReservation struct {
	s    *Server
	ctx  context.Context
	held int64
}

// reserve takes n more bytes of the budget, waiting up to QueueTimeout.
func (b *bodyReservation) reserve(n int64) bool {
	ok := b.s.bodies.TryAcquire(n)
	if !ok && b.s.cfg.QueueTimeout >= 0 {
		ctx, cancel := context.WithTimeout(b.ctx, b.s.cfg.QueueTimeout)
		ok = b.s.bodies.Acquire(ctx, n) == nil
		cancel()
	}
	if ok {
		b.held += n
	}
	return ok
}

// release gives everything back.
func (b *bodyReservation) release() {
	if b.held > 0 {
		b.s.bodies.Release(b.held)
		b.held = 0
	}
}

// acquire takes a verification slot, waiting up to QueueTimeout.
func (s *Server) acquire(ctx context.Context) bool {
	select {
	case s.sem <- struct{}{}:
		return true
	default:
	}
	if s.cfg.QueueTimeout < 0 {
		return false
	}
	t := time.NewTimer(s.cfg.QueueTimeout)
	defer t.Stop()
	select {
	case s.sem <- struct{}{}:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

func (s *Server) release() { <-s.sem }

func (s *Server) handleAttest(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	d := &decision{remote: r.RemoteAddr}
	defer func() { s.logDecision(r.Context(), d, time.Since(start)) }()
	busy := func(reason, msg string) {
		d.status, d.outcome, d.reason = http.StatusServiceUnavailable, "busy", reason
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, AttestResponse{MediaType: ResponseMediaType, Verdict: attest.VerdictNotTrusted,
			Error: "busy: " + msg + ", retry later"})
	}
	e := checkPost(w, r, s.cfg.MaxBodyBytes)
	var req *AttestRequest
	if e == nil {
		// Room for each part of the body before it is read.
		budget := &bodyReservation{s: s, ctx: r.Context()}
		defer budget.release()
		req, e = s.decodeAttest(w, r, budget.reserve)
	}
	if e != nil && e.status == http.StatusServiceUnavailable {
		busy("no room for the body: request bodies in flight at their limit", "too many request bodies in flight")
		return
	}
	if e != nil {
		d.status, d.outcome, d.reason = e.status, "bad_request", e.msg
		writeJSON(w, e.status, AttestResponse{MediaType: ResponseMediaType, Verdict: attest.VerdictNotTrusted, Error: e.msg})
		return
	}
	if !s.acquire(r.Context()) {
		busy("no verification slot free", "too many verifications in progress")
		return
	}
	defer s.release()
	// The verification stops when the client goes away or its time is up.
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.VerificationTimeout)
	defer cancel()
	if s.testHook != nil {
		s.testHook(ctx)
	}
	resp, status := s.judge(ctx, req, d)
	d.status = status
	if d.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((d.retryAfter+time.Second-1)/time.Second)))
	}
	b, err := resp.encode()
	if err != nil {
		s.log.Error("encoding a response", slog.String("error", err.Error()))
		writeJSON(w, http.StatusInternalServerError, ErrorResponse{Error: "internal error"})
		return
	}
	writeRaw(w, status, b)
}
