package attest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/MakeNowJust/heredoc/v2"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/codesignval/csv/attest"
	"github.com/codesignval/csv/attest/service"
	"github.com/codesignval/csv/attest/service/redisstore"
	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/keys"
)

// File size caps of serve's inputs.
const (
	maxConfigFile    = 1 << 20
	maxKeyFile       = 64 << 10
	maxAllowlistFile = 16 << 20
)

// duration is a YAML duration ("90s", "2m").
type duration time.Duration

func (d *duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a duration such as 30s or 2m", n.Line)
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a duration such as 30s or 2m", n.Line, n.Value)
	}
	*d = duration(v)
	return nil
}

// ServeConfig is csv attest serve's configuration file (YAML, strict:
// unknown fields are errors). Relative paths are relative to the file.
type ServeConfig struct {
	Listen string `yaml:"listen"`
	TLS    struct {
		Certificate string `yaml:"certificate"`
		Key         string `yaml:"key"`
	} `yaml:"tls"`
	PlaintextUnsafe bool             `yaml:"plaintext_unsafe"`
	Policy          string           `yaml:"policy"`
	CIPolicies      []string         `yaml:"ci_policies"`
	Certs           []string         `yaml:"certs"`
	PCRs            map[string][]int `yaml:"pcrs"`
	AllowSHA1Unsafe bool             `yaml:"allow_sha1_unsafe"`
	AK              struct {
		Roots         []string `yaml:"roots"`
		Intermediates []string `yaml:"intermediates"`
	} `yaml:"ak"`
	EK struct {
		Roots          []string `yaml:"roots"`
		Intermediates  []string `yaml:"intermediates"`
		Allowlist      string   `yaml:"allowlist"`
		TrustAnyUnsafe bool     `yaml:"trust_any_unsafe"`
	} `yaml:"ek"`
	Nonce struct {
		KeyFiles     []string `yaml:"key_files"`
		TTL          duration `yaml:"ttl"`
		MaxUsed      int      `yaml:"max_used"`
		MaxUsedPerEK int      `yaml:"max_used_per_ek"`
		// ReplayStore is the used-nonce store the replicas share
		// (redis:// or rediss:// URL; docs/fleet.md), and
		// ReplayStoreCA the CA certificates (PEM) a rediss:// server's
		// certificate must chain to (default: the system's).
		ReplayStore   string   `yaml:"replay_store"`
		ReplayStoreCA []string `yaml:"replay_store_ca"`
	} `yaml:"nonce"`
	Credential struct {
		Format        string   `yaml:"format"`
		CACertificate string   `yaml:"ca_certificate"`
		CAKey         string   `yaml:"ca_key"`
		Lifetime      duration `yaml:"lifetime"`
		Issuer        string   `yaml:"issuer"`
		ClaimsOID     string   `yaml:"claims_oid"`
	} `yaml:"credential"`
	Limits struct {
		MaxBodyBytes               int64    `yaml:"max_body_bytes"`
		MaxBodyBytesInFlight       int64    `yaml:"max_body_bytes_in_flight"`
		MaxConcurrentVerifications int      `yaml:"max_concurrent_verifications"`
		QueueTimeout               duration `yaml:"queue_timeout"`
		VerificationTimeout        duration `yaml:"verification_timeout"`
		ReadHeaderTimeout          duration `yaml:"read_header_timeout"`
		ReadTimeout                duration `yaml:"read_timeout"`
		WriteTimeout               duration `yaml:"write_timeout"`
		IdleTimeout                duration `yaml:"idle_timeout"`
		ShutdownTimeout            duration `yaml:"shutdown_timeout"`
	} `yaml:"limits"`
}

// ServeOptions are the flags of csv attest serve.
type ServeOptions struct {
	IO      *cmdutil.IOStreams
	Version string

	ConfigFile       string
	Listen           string
	TLSCert, TLSKey  string
	Policy           string
	CIPolicies       []string
	CACert, CAKey    string
	EKRoots          []string
	EKAllowlist      string
	NonceKeyFile     string
	ReplayStore      string
	CredentialFormat string
	PlaintextUnsafe  bool
	TrustAnyEKUnsafe bool
	changed          func(string) bool

	// ready, if set, receives the listening address (tests).
	ready func(addr string)
	// starting, if set, runs before the configuration is read (tests).
	starting func()
}

// NewCmdServe returns the serve command. runF, if not nil, replaces the run
// function (for tests of flag parsing).
func NewCmdServe(f *cmdutil.Factory, runF func(context.Context, *ServeOptions) error) *cobra.Command {
	o := &ServeOptions{IO: f.IO, Version: f.Version}
	cmd := &cobra.Command{
		Use:   "serve --config FILE [flags]",
		Short: "Serve the attestation API: hosts attest, trusted ones get a credential sealed to their TPM",
		Long: heredoc.Doc(`
			Serve the attestation service's HTTP API. A host asks for a nonce (POST /v1/nonce), quotes
			its PCRs with it and submits its event log, quotes, AK and EK (POST /v1/attest). The
			service verifies the evidence and judges the boot with the attestation policy and the
			code integrity policies, as csv attest verify does, and answers with every check and
			the verified claims. A trusted host also gets a credential: a token, an AK certificate or
			an EAR (EAT Attestation Result) stating the claims, encrypted under a secret wrapped with
			TPM2_MakeCredential to its EK and AK, which only that TPM can recover. GET /healthz
			answers while it serves.

			The configuration file (YAML, see docs/attest.md) holds everything; the flags override it.
			Each decision is logged to standard error as one JSON line. SIGHUP reloads the policies,
			the EK roots and allowlist, the AK roots and the TLS key pair (what does not load is
			refused and the old one stays): to revoke an EK, take it off the allowlist and send
			SIGHUP. The nonce keys and the credential CA are read at start only. SIGTERM or SIGINT
			shut down gracefully, letting requests in progress finish.

			Replicas behind a load balancer share the nonce key and, with --replay-store, a Redis or
			Valkey server that records used nonces, so that a submission replayed to another replica
			is refused; while that store is unreachable, submissions are refused with 503 (see
			docs/fleet.md). The store must answer at start.

			Exit status: 0 after a graceful shutdown; 2 for a configuration error.
		`),
		Example: cmdutil.Example(heredoc.Doc(`
			$ csv attest serve --config /etc/csv/attest-serve.yaml
			$ kill -HUP $(pidof csv)   # reload the policies
		`)),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.changed = cmd.Flags().Changed
			if o.ConfigFile == "" && o.Policy == "" {
				return cmdutil.FlagErrorf("attest serve: give --config (or at least --policy, --ca-cert and --ca-key)")
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runServe(cmd.Context(), o)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&o.ConfigFile, "config", "c", "", "the configuration `FILE` (YAML)")
	fl.StringVar(&o.Listen, "listen", ":8443", "the `ADDRESS` to listen on")
	fl.StringVar(&o.TLSCert, "tls-cert", "", "the TLS certificate chain `FILE` (PEM)")
	fl.StringVar(&o.TLSKey, "tls-key", "", "the TLS private key `FILE` (PEM)")
	fl.StringVar(&o.Policy, "policy", "", "the attestation policy `FILE`")
	fl.StringArrayVar(&o.CIPolicies, "ci-policy", nil, "code integrity policy `FILE` judging the boot components; repeatable")
	fl.StringVar(&o.CACert, "ca-cert", "", "the credential CA's certificate `FILE` (PEM)")
	fl.StringVar(&o.CAKey, "ca-key", "", "the credential CA's private key `FILE` (PEM)")
	fl.StringArrayVar(&o.EKRoots, "ek-roots", nil, "TPM manufacturer CA certificates `FILE` EK certificates must chain to; repeatable")
	fl.StringVar(&o.EKAllowlist, "ek-allowlist", "", "`FILE` of trusted EKs: SHA-256 of their public keys (hex), one a line")
	fl.StringVar(&o.NonceKeyFile, "nonce-key-file", "", "`FILE` holding the nonce MAC key (at least 32 bytes; the same on every replica)")
	fl.StringVar(&o.ReplayStore, "replay-store", "", "used-nonce store the replicas share: redis[s]://[user:password@]host:port[/db] (prefer the configuration file for a password)")
	fl.StringVar(&o.CredentialFormat, "credential-format", "", "the credential's payload `FORMAT`: token (default), x509 or ear (an EAT Attestation Result JWT)")
	fl.BoolVar(&o.PlaintextUnsafe, "plaintext-unsafe", false, "serve HTTP without TLS (behind a TLS-terminating proxy, or tests)")
	fl.BoolVar(&o.TrustAnyEKUnsafe, "trust-any-ek-unsafe", false, "trust any EK: a host without a genuine TPM could read its credential")
	return cmd
}

// loadServeConfig reads the configuration file and applies the flags.
func loadServeConfig(o *ServeOptions) (*ServeConfig, string, error) {
	c := &ServeConfig{}
	dir := "."
	if o.ConfigFile != "" {
		b, err := readFile("configuration", o.ConfigFile, maxConfigFile)
		if err != nil {
			return nil, "", err
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
			return nil, "", fmt.Errorf("configuration %s: %w", o.ConfigFile, err)
		}
		var extra yaml.Node
		if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
			return nil, "", fmt.Errorf("configuration %s: a configuration file holds one YAML document", o.ConfigFile)
		}
		dir = filepath.Dir(o.ConfigFile)
		rel := func(p *string) {
			if *p != "" && !filepath.IsAbs(*p) {
				*p = filepath.Join(dir, *p)
			}
		}
		for _, p := range []*string{&c.TLS.Certificate, &c.TLS.Key, &c.Policy, &c.EK.Allowlist, &c.Credential.CACertificate, &c.Credential.CAKey} {
			rel(p)
		}
		for _, l := range [][]string{c.CIPolicies, c.Certs, c.AK.Roots, c.AK.Intermediates, c.EK.Roots, c.EK.Intermediates, c.Nonce.KeyFiles,
			c.Nonce.ReplayStoreCA} {
			for i := range l {
				rel(&l[i])
			}
		}
	}
	set := func(name string, dst *string, v string) {
		if o.changed != nil && o.changed(name) {
			*dst = v
		}
	}
	if c.Listen == "" {
		c.Listen = o.Listen // the flag's default
	}
	set("listen", &c.Listen, o.Listen)
	set("tls-cert", &c.TLS.Certificate, o.TLSCert)
	set("tls-key", &c.TLS.Key, o.TLSKey)
	set("policy", &c.Policy, o.Policy)
	set("ca-cert", &c.Credential.CACertificate, o.CACert)
	set("ca-key", &c.Credential.CAKey, o.CAKey)
	set("ek-allowlist", &c.EK.Allowlist, o.EKAllowlist)
	set("credential-format", &c.Credential.Format, o.CredentialFormat)
	set("replay-store", &c.Nonce.ReplayStore, o.ReplayStore)
	if o.changed != nil {
		if o.changed("ci-policy") {
			c.CIPolicies = o.CIPolicies
		}
		if o.changed("ek-roots") {
			c.EK.Roots = o.EKRoots
		}
		if o.changed("nonce-key-file") {
			c.Nonce.KeyFiles = []string{o.NonceKeyFile}
		}
		if o.changed("plaintext-unsafe") {
			c.PlaintextUnsafe = o.PlaintextUnsafe
		}
		if o.changed("trust-any-ek-unsafe") {
			c.EK.TrustAnyUnsafe = o.TrustAnyEKUnsafe
		}
	}
	switch {
	case c.Policy == "":
		return nil, "", cmdutil.FlagErrorf("attest serve: no attestation policy (policy: in the configuration, or --policy)")
	case c.Credential.CACertificate == "" || c.Credential.CAKey == "":
		return nil, "", cmdutil.FlagErrorf("attest serve: the credential CA is required (credential: ca_certificate and ca_key, or --ca-cert and --ca-key)")
	case (c.TLS.Certificate == "") != (c.TLS.Key == ""):
		return nil, "", cmdutil.FlagErrorf("attest serve: give both the TLS certificate and key")
	case c.TLS.Certificate == "" && !c.PlaintextUnsafe:
		return nil, "", cmdutil.FlagErrorf("attest serve: no TLS certificate: give tls: certificate and key (or --plaintext-unsafe behind a TLS-terminating proxy)")
	case c.TLS.Certificate != "" && c.PlaintextUnsafe:
		return nil, "", cmdutil.FlagErrorf("attest serve: both a TLS certificate and plaintext_unsafe")
	case len(c.Nonce.ReplayStoreCA) > 0 && c.Nonce.ReplayStore == "":
		return nil, "", cmdutil.FlagErrorf("attest serve: nonce: replay_store_ca without a replay_store")
	}
	return c, dir, nil
}

// policyLoader returns the service's LoadPolicy: it reads the policy
// files each time.
func policyLoader(policyPath string, ciPaths, certFiles []string) func() (*service.Policy, error) {
	return func() (*service.Policy, error) {
		pdata, err := readFile("attestation policy", policyPath, maxPolicyFile)
		if err != nil {
			return nil, err
		}
		dir := filepath.Dir(policyPath)
		p, err := attest.ParsePolicy(pdata, policyPath, attest.PolicyOptions{ReadFile: func(name string) ([]byte, error) {
			if !filepath.IsAbs(name) {
				name = filepath.Join(dir, filepath.FromSlash(name))
			}
			return cmdutil.ReadFileCapped(name, maxDBXFile)
		}})
		if err != nil {
			return nil, err
		}
		out := &service.Policy{Attestation: p}
		if len(ciPaths) > 0 {
			ps, err := cipolicy.LoadFiles(ciPaths)
			if err != nil {
				return nil, err
			}
			roots, err := signing.LoadCertificateFiles(certFiles)
			if err != nil {
				return nil, err
			}
			if out.CI, err = cipolicy.NewSet(cipolicy.SetOptions{TrustedRoots: roots}, ps...); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
}

// readAllowlist reads an EK allowlist file, capped, by
// service.ParseEKAllowlist.
func readAllowlist(path string) ([][32]byte, error) {
	b, err := readFile("EK allowlist", path, maxAllowlistFile)
	if err != nil {
		return nil, err
	}
	l, err := service.ParseEKAllowlist(b)
	if err != nil {
		return nil, fmt.Errorf("EK allowlist %s: %w", path, err)
	}
	return l, nil
}

func parseOID(s string) (asn1.ObjectIdentifier, error) {
	var oid asn1.ObjectIdentifier
	for _, p := range strings.Split(s, ".") {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n >= 1<<28 {
			return nil, fmt.Errorf("claims_oid %q: want a dotted OID with arcs under 2^28", s)
		}
		oid = append(oid, n)
	}
	if len(oid) < 3 || oid[0] > 2 {
		return nil, fmt.Errorf("claims_oid %q is not an OID", s)
	}
	return oid, nil
}

// loadTrust reads the EK and AK roots and the EK allowlist the
// configuration names (at start, and again on SIGHUP).
func loadTrust(c *ServeConfig) (service.Trust, error) {
	t := service.Trust{TrustAnyEKUnsafe: c.EK.TrustAnyUnsafe}
	var err error
	if t.AKRoots, err = signing.LoadCertificateFiles(c.AK.Roots); err != nil {
		return t, err
	}
	if t.AKIntermediates, err = signing.LoadCertificateFiles(c.AK.Intermediates); err != nil {
		return t, err
	}
	if t.EKRoots, err = signing.LoadX509CertificateFiles(c.EK.Roots); err != nil {
		return t, err
	}
	if t.EKIntermediates, err = signing.LoadX509CertificateFiles(c.EK.Intermediates); err != nil {
		return t, err
	}
	if c.EK.Allowlist != "" {
		if t.EKAllowlist, err = readAllowlist(c.EK.Allowlist); err != nil {
			return t, err
		}
	}
	return t, nil
}

// serviceConfig turns the file into a service.Config.
func serviceConfig(c *ServeConfig, logger *slog.Logger) (service.Config, error) {
	sc := service.Config{
		LoadPolicy:       policyLoader(c.Policy, c.CIPolicies, c.Certs),
		AllowSHA1Unsafe:  c.AllowSHA1Unsafe,
		TrustAnyEKUnsafe: c.EK.TrustAnyUnsafe,
		CredentialFormat: service.CredentialFormat(c.Credential.Format),
		TokenIssuer:      c.Credential.Issuer,
		Logger:           logger,
	}
	for bank, pcrs := range c.PCRs {
		sc.PCRs = append(sc.PCRs, service.PCRSelection{Bank: bank, PCRs: pcrs})
	}
	tr, err := loadTrust(c)
	if err != nil {
		return sc, err
	}
	sc.AKRoots, sc.AKIntermediates, sc.EKRoots, sc.EKIntermediates, sc.EKAllowlist = tr.AKRoots, tr.AKIntermediates, tr.EKRoots, tr.EKIntermediates, tr.EKAllowlist
	cas, err := signing.LoadX509CertificateFiles([]string{c.Credential.CACertificate})
	if err != nil {
		return sc, err
	}
	sc.CA = cas[0]
	if now := time.Now(); now.Before(sc.CA.NotBefore) || now.After(sc.CA.NotAfter) {
		return sc, signing.Errorf(service.ErrCAExpired, "credential CA %s: the certificate %q is valid from %s to %s, not now (%s): it would issue invalid credentials",
			c.Credential.CACertificate, signing.NameString(sc.CA.Subject), sc.CA.NotBefore.UTC().Format(time.RFC3339),
			sc.CA.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	kb, err := readFile("CA key", c.Credential.CAKey, maxKeyFile)
	if err != nil {
		return sc, err
	}
	if sc.CAKey, err = keys.ParsePrivateKeyPEM(kb, nil); err != nil {
		return sc, fmt.Errorf("CA key %s: %w", c.Credential.CAKey, err)
	}
	if c.Credential.ClaimsOID != "" {
		if sc.ClaimsOID, err = parseOID(c.Credential.ClaimsOID); err != nil {
			return sc, err
		}
	}
	for _, f := range c.Nonce.KeyFiles {
		k, err := readFile("nonce key", f, maxKeyFile)
		if err != nil {
			return sc, err
		}
		sc.NonceKeys = append(sc.NonceKeys, bytes.TrimSpace(k))
	}
	sc.NonceTTL, sc.MaxUsedNonces, sc.MaxUsedNoncesPerEK = time.Duration(c.Nonce.TTL), c.Nonce.MaxUsed, c.Nonce.MaxUsedPerEK
	sc.CredentialLifetime = time.Duration(c.Credential.Lifetime)
	l := c.Limits
	sc.MaxBodyBytes, sc.MaxBodyBytesInFlight, sc.MaxConcurrentVerifications = l.MaxBodyBytes, l.MaxBodyBytesInFlight, l.MaxConcurrentVerifications
	sc.QueueTimeout, sc.ReadHeaderTimeout, sc.ReadTimeout = time.Duration(l.QueueTimeout), time.Duration(l.ReadHeaderTimeout), time.Duration(l.ReadTimeout)
	sc.WriteTimeout, sc.IdleTimeout, sc.ShutdownTimeout = time.Duration(l.WriteTimeout), time.Duration(l.IdleTimeout), time.Duration(l.ShutdownTimeout)
	sc.VerificationTimeout = time.Duration(l.VerificationTimeout)
	return sc, nil
}

// tlsKeyPair loads a TLS certificate and key, to be reloaded on SIGHUP.
type tlsKeyPair struct {
	cert, key string
	cur       atomic.Pointer[tls.Certificate]
}

func (p *tlsKeyPair) load() error {
	// Read as every file csv opens by name (a FIFO is refused, not waited on).
	certPEM, err := cmdutil.ReadFileCapped(p.cert, limits.MaxCertFile)
	if err != nil {
		return fmt.Errorf("TLS certificate %s: %w", p.cert, err)
	}
	keyPEM, err := cmdutil.ReadFileCapped(p.key, limits.MaxCertFile)
	if err != nil {
		return fmt.Errorf("TLS key %s: %w", p.key, err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("TLS certificate %s and key %s: %w", p.cert, p.key, err)
	}
	p.cur.Store(&c)
	return nil
}

// serveGCPercent is the collector's target unless GOGC is set: the
// service's live heap is a few megabytes and it allocates about 300 KB per
// attestation, so at Go's default (100) the collector ran about 100 times
// a second under load and took a quarter of the CPU; at 400 the service
// needs about 30% less CPU per attestation for about 15 MB more memory
// (bench/attestload/README.md). Bound memory with GOMEMLIMIT.
const serveGCPercent = 400

func runServe(ctx context.Context, o *ServeOptions) error {
	// Once ctx is done the service finishes requests for its shutdown
	// timeout, and no longer: csv's interrupt deadline must not cut it.
	cmdutil.NoInterruptDeadline(ctx)
	// SIGHUP's default action ends the process: catch it before the slow
	// part of starting (a reload asked for meanwhile happens once serving).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if o.starting != nil {
		o.starting()
	}
	c, _, err := loadServeConfig(o)
	if err != nil {
		return err
	}
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(serveGCPercent)
	}
	logger := slog.New(slog.NewJSONHandler(o.IO.ErrOut, nil))
	sc, err := serviceConfig(c, logger)
	if err != nil {
		return err
	}
	if o.Version != "" {
		sc.VerifierBuild = "csv " + o.Version
	}
	var kp *tlsKeyPair
	if c.TLS.Certificate != "" {
		kp = &tlsKeyPair{cert: c.TLS.Certificate, key: c.TLS.Key}
		if err := kp.load(); err != nil {
			return err
		}
		sc.TLS = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return kp.cur.Load(), nil
		}}
	}
	if c.Nonce.ReplayStore != "" {
		store, err := openReplayStore(ctx, c)
		if err != nil {
			return err
		}
		defer store.Close()
		sc.ReplayStore = store
		logger.Info("replay store", slog.String("url", store.String()))
	}
	srv, err := service.New(sc)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("attest serve: %w", err)
	}
	if o.ready != nil {
		o.ready(ln.Addr().String())
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				reload(srv, c, kp, logger)
			}
		}
	}()
	return srv.Serve(ctx, ln)
}

// replayStoreStartTimeout bounds the check that the replay store answers
// at start.
const replayStoreStartTimeout = 10 * time.Second

// openReplayStore connects to the replay store the configuration names
// and checks that it answers (and takes the URL's credentials): a replica
// that could only refuse submissions should not start.
func openReplayStore(ctx context.Context, c *ServeConfig) (*redisstore.Store, error) {
	var o redisstore.Options
	if len(c.Nonce.ReplayStoreCA) > 0 {
		certs, err := signing.LoadX509CertificateFiles(c.Nonce.ReplayStoreCA)
		if err != nil {
			return nil, fmt.Errorf("attest serve: replay store CA: %w", err)
		}
		o.RootCAs = x509.NewCertPool()
		for _, cert := range certs {
			o.RootCAs.AddCert(cert)
		}
	}
	store, err := redisstore.New(c.Nonce.ReplayStore, o)
	if err != nil {
		return nil, fmt.Errorf("attest serve: replay store: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, replayStoreStartTimeout)
	defer cancel()
	if err := store.Ping(pctx); err != nil {
		store.Close()
		return nil, fmt.Errorf("attest serve: the replay store does not answer: %w", err)
	}
	return store, nil
}

// reload reloads the policies, the EK and AK roots and EK allowlist, and
// the TLS key pair (each kept on error).
func reload(srv *service.Server, c *ServeConfig, kp *tlsKeyPair, logger *slog.Logger) {
	srv.Reload() // logs its outcome
	if t, err := loadTrust(c); err != nil {
		logger.Error("trust reload refused: the trust in use stays", slog.String("error", err.Error()))
	} else {
		srv.ReloadTrust(t) // logs its outcome
	}
	if kp != nil {
		if err := kp.load(); err != nil {
			logger.Error("TLS key pair reload refused: the one in use stays", slog.String("error", err.Error()))
		} else {
			logger.Info("TLS key pair reloaded")
		}
	}
}
