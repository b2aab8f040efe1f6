// Command attestload is a load generator for the attestation service: N
// synthetic hosts attest concurrently, for a bounded count and duration,
// to one service instance (started in this process, or at -url), over
// HTTPS on loopback, each exchange a real one (nonce, quote, submission,
// verification and policy, credential made and opened). It prints verified
// attestations per second, latency percentiles and errors, with the
// in-process verifier cost per attestation for reference.
//
// The hosts are software (package servicetest): their quotes are signed
// and their credentials activated in memory (TPM2_ActivateCredential done
// in software), because a TPM, hardware or swtpm, would be the bottleneck.
// They run in this process, so they take CPU from the service: the figures
// are a floor for the service alone.
//
// Each host sends a real event log (default: GCE COS 85's, 24 KB, three
// banks, from ../shared/testdata/eventlogs) with a quote of the PCRs the
// service asks for, over the values the log replays to; the service judges
// it with a strict attestation policy (Secure Boot, no debugging) and a
// code integrity policy allowing the boot components by hash.
//
// With -replicas 2 -replay-store start it runs two service replicas in
// this process, behind one redis-server it starts (package redistest):
// each host takes its nonce from one replica and submits to the other, as
// behind a load balancer, and every nonce is marked used in the shared
// store. -compare runs one replica with the in-memory cache and two with
// the shared store in turn (-rounds times), in the same run, and prints
// both with the load average.
//
// Usage:
//
//	go run ./bench/attestload [-hosts 8] [-duration 10s] [-count 0] [-format token|x509]
//	go run ./bench/attestload -replicas 2 -replay-store start|redis://HOST:PORT
//	go run ./bench/attestload -compare [-rounds 3] [-replay-store start|redis://HOST:PORT]
//	go run ./bench/attestload -write-config DIR   # a configuration for csv attest serve
//	go run ./bench/attestload -url https://127.0.0.1:8443 -ca DIR/ca.pem
package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/codesignval/csv/attest"
	"github.com/codesignval/csv/attest/eventlog"
	"github.com/codesignval/csv/attest/service"
	"github.com/codesignval/csv/attest/service/redisstore"
	"github.com/codesignval/csv/attest/service/redisstore/redistest"
	"github.com/codesignval/csv/attest/service/servicetest"
	"github.com/codesignval/csv/cipolicy"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "attestload: %v\n", err)
		os.Exit(1)
	}
}

type options struct {
	hosts       int
	duration    time.Duration
	count       int
	warmup      int
	logPath     string
	format      string
	url, caFile string
	writeConfig string
	plain       bool
	refIters    int
	cpuProfile  string
	traceFile   string
	replicas    int
	replayStore string
	compare     bool
	rounds      int
}

func run() error {
	var o options
	flag.IntVar(&o.hosts, "hosts", 8, "concurrent synthetic hosts (at most 1024)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "how long to run (at most 5m)")
	flag.IntVar(&o.count, "count", 0, "stop after this many attestations (0: run for -duration)")
	flag.IntVar(&o.warmup, "warmup", 500, "attestations before measuring")
	flag.StringVar(&o.logPath, "eventlog", "../shared/testdata/eventlogs/go-tpm-tools/attestations/gce-cos-85-nonce9009.derived.json",
		"the event log: a raw TCG log, or a go-tpm-tools attestation JSON (event_log_b64)")
	flag.StringVar(&o.format, "format", "token", "credential format: token, x509 or ear")
	flag.StringVar(&o.url, "url", "", "attest to the service at this URL instead of one started here")
	flag.StringVar(&o.caFile, "ca", "", "with -url: the CA certificate (PEM) of its TLS certificate")
	flag.StringVar(&o.writeConfig, "write-config", "", "write a csv attest serve configuration for this load to `DIR` and exit")
	flag.BoolVar(&o.plain, "plaintext", false, "serve HTTP instead of HTTPS")
	flag.IntVar(&o.refIters, "ref-iterations", 2000, "iterations of the in-process verifier reference")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the measured load to `FILE`")
	flag.StringVar(&o.traceFile, "trace", "", "write an execution trace of the measured load to `FILE`")
	flag.IntVar(&o.replicas, "replicas", 1, "service replicas started here (1 to 8): each host takes its nonce from one and submits to the next")
	flag.StringVar(&o.replayStore, "replay-store", "", "the replicas' shared replay store: a redis:// URL, or start (a redis-server started here); empty: in-memory caches only")
	flag.BoolVar(&o.compare, "compare", false, "measure 1 replica with the in-memory cache, then 2 replicas with the shared replay store (default -replay-store start)")
	flag.IntVar(&o.rounds, "rounds", 1, "with -compare: how many times to measure each, alternating")
	flag.Parse()
	switch {
	case o.hosts < 1 || o.hosts > 1024:
		return errors.New("-hosts: 1 to 1024")
	case o.duration <= 0 || o.duration > 5*time.Minute:
		return errors.New("-duration: up to 5m")
	case o.count < 0 || o.warmup < 0:
		return errors.New("-count and -warmup must not be negative")
	case o.replicas < 1 || o.replicas > 8:
		return errors.New("-replicas: 1 to 8")
	case o.rounds < 1 || o.rounds > 10:
		return errors.New("-rounds: 1 to 10")
	case o.url != "" && (o.replicas != 1 || o.replayStore != "" || o.compare):
		return errors.New("-url measures one service elsewhere: -replicas, -replay-store and -compare start services here")
	}

	// As csv attest serve does (see its serveGCPercent), unless GOGC is
	// set.
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(400)
	}
	log, err := readLog(o.logPath)
	if err != nil {
		return err
	}
	w, err := newWorkload(log)
	if err != nil {
		return err
	}
	if o.writeConfig != "" {
		return w.writeConfig(o.writeConfig, o.format)
	}

	// The hosts (ECC EKs and AKs: in software, RSA would measure the
	// load generator, not the service).
	hosts := make([]*servicetest.Host, o.hosts)
	for i := range hosts {
		if hosts[i], err = servicetest.NewHost(servicetest.ECC, servicetest.ECC); err != nil {
			return err
		}
	}

	if o.compare && o.replayStore == "" {
		o.replayStore = "start"
	}
	if o.replayStore == "start" {
		u, stop, err := startRedis()
		if err != nil {
			return err
		}
		defer stop()
		o.replayStore = u
	}
	if o.compare {
		return w.compare(hosts, o)
	}

	urls, pool := []string{o.url}, (*x509.CertPool)(nil)
	if o.url == "" {
		var ca *x509.Certificate
		var stop func()
		urls, ca, stop, err = w.serve(hosts, o)
		if err != nil {
			return err
		}
		defer stop()
		if ca != nil {
			pool = x509.NewCertPool()
			pool.AddCert(ca)
		}
	} else if o.caFile != "" {
		b, err := os.ReadFile(o.caFile)
		if err != nil {
			return err
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return fmt.Errorf("%s: no PEM certificate", o.caFile)
		}
	}

	ref, err := w.reference(o.refIters)
	if err != nil {
		return err
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	if o.traceFile != "" {
		f, err := os.Create(o.traceFile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := trace.Start(f); err != nil {
			return err
		}
	}
	res := w.load(hosts, urls, pool, o)
	if o.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if o.traceFile != "" {
		trace.Stop()
	}
	res.print(os.Stdout, o, w, ref)
	if res.errors.Load() > 0 {
		return fmt.Errorf("%d errors", res.errors.Load())
	}
	return nil
}

// readLog reads a raw log or a go-tpm-tools attestation JSON.
func readLog(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w (run from the repository root with ../shared beside it, or give -eventlog)", err)
	}
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte("{")) {
		var j struct {
			Log string `json:"event_log_b64"`
		}
		if err := json.Unmarshal(b, &j); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return base64.StdEncoding.DecodeString(j.Log)
	}
	return b, nil
}

// workload is the evidence the hosts send and the policy that trusts it.
type workload struct {
	log      []byte
	logJSON  []byte        // "event_log":"<base64>"
	pcrs     eventlog.PCRs // the SHA-256 values the log replays to
	policy   string
	ciPolicy string
	events   int
}

func newWorkload(log []byte) (*workload, error) {
	l, err := eventlog.Parse(log)
	if err != nil {
		return nil, err
	}
	w := &workload{log: log, pcrs: eventlog.PCRs{}, events: len(l.Events)}
	w.logJSON = []byte(`"event_log":"` + base64.StdEncoding.EncodeToString(log) + `"`)
	r := l.Replay()
	for p := 0; p < eventlog.NumPCRs; p++ {
		c := r.Candidates(eventlog.SHA256, p)
		if len(c) == 0 {
			continue
		}
		w.pcrs.Set(eventlog.SHA256, p, c[0].Value)
	}
	// The policy: strict defaults, and a code integrity policy allowing
	// the boot components by their Authenticode hashes (found by verifying
	// a quote of every PCR once).
	h, err := servicetest.NewHost(servicetest.ECC, servicetest.ECC)
	if err != nil {
		return nil, err
	}
	nonce := []byte("attestload setup")
	all := make([]int, 0, eventlog.NumPCRs)
	for p := 0; p < eventlog.NumPCRs; p++ {
		if w.pcrs.Get(eventlog.SHA256, p) != nil {
			all = append(all, p)
		}
	}
	q, err := h.Quote(eventlog.SHA256, all, w.pcrs, nonce)
	if err != nil {
		return nil, err
	}
	ak, err := attest.ParseAK(h.AKPublic())
	if err != nil {
		return nil, err
	}
	v, err := attest.Verify(context.Background(), &attest.Evidence{EventLog: log, Quotes: []attest.Quote{{Attest: q.Attest, Signature: q.Signature}}},
		attest.VerifyOptions{AK: ak, Nonce: nonce})
	if err != nil {
		return nil, err
	}
	var rules strings.Builder
	for i, c := range v.BootState().Components {
		if c.AuthenticodeSHA256 != nil {
			fmt.Fprintf(&rules, "  - {id: c%d, action: allow, authenticode_sha256: %x, scenarios: [boot]}\n", i, c.AuthenticodeSHA256)
		}
	}
	w.policy = "format: csv-attest-policy/v1\nname: attestload\n"
	w.ciPolicy = "format: csv-policy/v1\nname: attestload-boot\nrules:\n" + rules.String()
	return w, nil
}

func (w *workload) loadPolicy() (*service.Policy, error) {
	p, err := attest.ParsePolicy([]byte(w.policy), "attestload.yaml", attest.PolicyOptions{})
	if err != nil {
		return nil, err
	}
	cp, err := cipolicy.Parse([]byte(w.ciPolicy), "attestload-boot.yaml")
	if err != nil {
		return nil, err
	}
	set, err := cipolicy.NewSet(cipolicy.SetOptions{}, cp)
	if err != nil {
		return nil, err
	}
	return &service.Policy{Attestation: p, CI: set}, nil
}

var claimsOID = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}

// maxUsedNoncesPerEK is the per-EK share of the used-nonce cache the load
// needs: as many as the whole cache holds by default.
const maxUsedNoncesPerEK = 1 << 20

// serve starts o.replicas replicas of the service in this process on
// loopback (the same nonce key, CA and trust, as a fleet has), each with
// its own connection to the shared replay store if o.replayStore is set.
func (w *workload) serve(hosts []*servicetest.Host, o options) ([]string, *x509.Certificate, func(), error) {
	ca, caKey, err := servicetest.NewCA("attestload CA", time.Now())
	if err != nil {
		return nil, nil, nil, err
	}
	nonceKey := make([]byte, 32)
	rand.Read(nonceKey)
	var stops []func()
	stopAll := func() {
		for _, f := range slices.Backward(stops) {
			f()
		}
	}
	var urls []string
	for range o.replicas {
		cfg := service.Config{
			LoadPolicy: w.loadPolicy,
			CA:         ca, CAKey: caKey, CredentialFormat: service.CredentialFormat(o.format), ClaimsOID: claimsOID,
			NonceKeys: [][]byte{nonceKey},
			// The decision log is written in full, to nowhere. Every limit
			// is the service's default but one: a few hosts attesting
			// thousands of times a second use far more nonces each than a
			// real host's share of the used-nonce cache (64 in a TTL).
			MaxUsedNoncesPerEK: maxUsedNoncesPerEK,
			Logger:             slog.New(slog.NewJSONHandler(io.Discard, nil)),
		}
		if o.replayStore != "" {
			st, err := redisstore.New(o.replayStore, redisstore.Options{})
			if err == nil {
				err = st.Ping(context.Background())
			}
			if err != nil {
				stopAll()
				return nil, nil, nil, err
			}
			stops = append(stops, func() { st.Close() })
			cfg.ReplayStore = st
		}
		for _, h := range hosts {
			cfg.EKAllowlist = append(cfg.EKAllowlist, h.EKKeySHA256())
		}
		scheme := "https"
		if o.plain {
			scheme = "http"
		} else {
			cfg.TLS = &tls.Config{Certificates: []tls.Certificate{tlsCert(ca, caKey.(*ecdsa.PrivateKey))}}
		}
		srv, err := service.New(cfg)
		if err != nil {
			stopAll()
			return nil, nil, nil, err
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			stopAll()
			return nil, nil, nil, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ctx, ln) }()
		stops = append(stops, func() {
			cancel()
			if err := <-done; err != nil {
				fmt.Fprintf(os.Stderr, "attestload: serve: %v\n", err)
			}
		})
		urls = append(urls, scheme+"://"+ln.Addr().String())
	}
	return urls, ca, stopAll, nil
}

// startRedis starts a redis-server on loopback for the run.
func startRedis() (string, func(), error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", nil, errors.New("-replay-store start: redis-server is not installed (apt-get install redis-server), or give a redis:// URL")
	}
	dir, err := os.MkdirTemp("", "attestload-redis")
	if err != nil {
		return "", nil, err
	}
	srv, err := redistest.Start(bin, dir)
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	return srv.URL(), func() { srv.Stop(); os.RemoveAll(dir) }, nil
}

// compare measures one replica with its in-memory cache and two replicas
// with the shared replay store, o.rounds times each, alternating, and
// prints each run and then a summary.
func (w *workload) compare(hosts []*servicetest.Host, o options) error {
	type row struct {
		name string
		res  *results
		load string
	}
	var rows []row
	modes := []struct {
		name     string
		replicas int
		store    string
	}{
		{"1 replica, in-memory used-nonce cache", 1, ""},
		{"2 replicas, shared replay store (" + o.replayStore + ")", 2, o.replayStore},
	}
	ref, err := w.reference(o.refIters)
	if err != nil {
		return err
	}
	failed := int64(0)
	for round := range o.rounds {
		for _, m := range modes {
			mo := o
			mo.replicas, mo.replayStore = m.replicas, m.store
			urls, ca, stop, err := w.serve(hosts, mo)
			if err != nil {
				return err
			}
			var pool *x509.CertPool
			if !o.plain {
				pool = x509.NewCertPool()
				pool.AddCert(ca)
			}
			res := w.load(hosts, urls, pool, mo)
			stop()
			la := loadAvg()
			fmt.Printf("== round %d: %s; load average %s\n", round+1, m.name, la)
			res.print(os.Stdout, mo, w, ref)
			fmt.Println()
			failed += res.errors.Load()
			rows = append(rows, row{m.name, res, la})
		}
	}
	fmt.Println("summary (latency of the whole exchange: nonce + attest + activate; and of POST /v1/attest alone):")
	fmt.Println("| run | verified/s | p50 | p99 | p99 /v1/attest | errors | load average after |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- |")
	for _, r := range rows {
		n := r.res.ok.Load()
		fmt.Printf("| %s | %.0f | %s | %s | %s | %d | %s |\n", r.name, float64(n)/r.res.elapsed.Seconds(), ms(percentile(r.res.total, .5)),
			ms(percentile(r.res.total, .99)), ms(percentile(r.res.attestRTT, .99)), r.res.errors.Load(), r.load)
	}
	if failed > 0 {
		return fmt.Errorf("%d errors", failed)
	}
	return nil
}

// loadAvg is /proc/loadavg's 1, 5 and 15 minute load averages ("?" where
// there is none).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}

func tlsCert(ca *x509.Certificate, caKey *ecdsa.PrivateKey) tls.Certificate {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, k.Public(), caKey)
	if err != nil {
		panic(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
}

// reference measures the in-process verifier on the same evidence: Verify
// and Evaluate, one goroutine, as bench/attest does.
func (w *workload) reference(iters int) (time.Duration, error) {
	if iters <= 0 {
		return 0, nil
	}
	h, err := servicetest.NewHost(servicetest.ECC, servicetest.ECC)
	if err != nil {
		return 0, err
	}
	p, err := w.loadPolicy()
	if err != nil {
		return 0, err
	}
	nonce := []byte("reference nonce 0123456789abcdef")
	sel := service.DefaultPCRs()[0].PCRs
	q, err := h.Quote(eventlog.SHA256, sel, w.pcrs, nonce)
	if err != nil {
		return 0, err
	}
	ev := &attest.Evidence{EventLog: w.log, Quotes: []attest.Quote{{Attest: q.Attest, Signature: q.Signature}}, PCRs: eventlog.PCRs{}}
	for _, i := range sel {
		ev.PCRs.Set(eventlog.SHA256, i, w.pcrs.Get(eventlog.SHA256, i))
	}
	start := time.Now()
	for i := 0; i < iters; i++ {
		ak, err := attest.ParseAK(h.AKPublic())
		if err != nil {
			return 0, err
		}
		v, err := attest.Verify(context.Background(), ev, attest.VerifyOptions{AK: ak, Nonce: nonce})
		if err != nil {
			return 0, err
		}
		r, err := attest.Evaluate(context.Background(), v, p.Attestation, p.CI)
		if err != nil || !r.Trusted {
			return 0, fmt.Errorf("reference: not trusted: %v", err)
		}
	}
	return time.Since(start) / time.Duration(iters), nil
}

// results are the load's outcome.
type results struct {
	mu        sync.Mutex
	total     []time.Duration // whole exchange: nonce + attest + open
	attestRTT []time.Duration // POST /v1/attest alone
	errors    atomic.Int64
	errKinds  sync.Map
	elapsed   time.Duration
	ok        atomic.Int64
	cpu       time.Duration
}

func (r *results) fail(kind string) {
	r.errors.Add(1)
	v, _ := r.errKinds.LoadOrStore(kind, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

// load runs the hosts: warmup, then measured attestations until the
// duration or the count is reached.
func (w *workload) load(hosts []*servicetest.Host, urls []string, pool *x509.CertPool, o options) *results {
	res := &results{}
	var started atomic.Int64
	var measuring atomic.Bool
	var measureStart time.Time
	var startOnce sync.Once
	deadline := time.Now().Add(o.duration)
	var wg sync.WaitGroup
	cpu0 := cpuTime()
	for hi, h := range hosts {
		wg.Add(1)
		go func(h *servicetest.Host) {
			// Behind a load balancer: the nonce from one replica, the
			// submission to the next (with one replica, the same).
			next := hi
			defer wg.Done()
			tr := &http.Transport{MaxIdleConnsPerHost: 1, TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: false}
			hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
			for {
				n := started.Add(1)
				if n > int64(o.warmup) {
					startOnce.Do(func() {
						measureStart = time.Now()
						deadline = measureStart.Add(o.duration)
						cpu0 = cpuTime()
						measuring.Store(true)
					})
				}
				if measuring.Load() && (time.Now().After(deadline) || o.count > 0 && n > int64(o.warmup+o.count)) {
					return
				}
				t0 := time.Now()
				next++
				rtt, kind := w.attestOnce(hc, urls[next%len(urls)], urls[(next+1)%len(urls)], h)
				total := time.Since(t0)
				if !measuring.Load() || n <= int64(o.warmup) {
					continue
				}
				if kind != "" {
					res.fail(kind)
					continue
				}
				res.ok.Add(1)
				res.mu.Lock()
				res.total = append(res.total, total)
				res.attestRTT = append(res.attestRTT, rtt)
				res.mu.Unlock()
			}
		}(h)
	}
	wg.Wait()
	res.elapsed = time.Since(measureStart)
	res.cpu = cpuTime() - cpu0
	return res
}

// attestOnce runs one exchange; it returns the /v1/attest round trip and
// an error kind ("" on success).
func (w *workload) attestOnce(hc *http.Client, nonceURL, url string, h *servicetest.Host) (time.Duration, string) {
	var n service.NonceResponse
	b, _ := json.Marshal(h.NonceRequest())
	if kind := post(hc, nonceURL+service.PathNonce, b, &n); kind != "" {
		return 0, "nonce: " + kind
	}
	req, err := h.Evidence(&n, nil, w.pcrs)
	if err != nil {
		return 0, "evidence: " + err.Error()
	}
	// The log is the same in every request: its base64 is made once.
	b, err = json.Marshal(req)
	if err != nil {
		return 0, "evidence: " + err.Error()
	}
	b = bytes.Replace(b, []byte(`"event_log":null`), w.logJSON, 1)
	t0 := time.Now()
	var raw json.RawMessage
	kind := post(hc, url+service.PathAttest, b, &raw)
	rtt := time.Since(t0)
	if kind != "" {
		return rtt, "attest: " + kind
	}
	// A host needs the credential (the report is for people: csv attest
	// request decodes it all). The service writes "credential" last, so
	// the load generator reads only that and leaves the CPU to the service.
	i := bytes.LastIndex(raw, []byte(`,"credential":`))
	if !bytes.Contains(raw[:min(len(raw), 256)], []byte(`"trusted":true`)) || i < 0 {
		return rtt, "attest: trusted without a credential"
	}
	var cred service.Credential
	if err := json.Unmarshal(bytes.TrimSuffix(bytes.TrimSpace(raw[i+len(`,"credential":`):]), []byte("}")), &cred); err != nil {
		return rtt, "attest: the credential is not JSON"
	}
	if _, err := h.Open(&cred); err != nil {
		return rtt, "open: " + err.Error()
	}
	return rtt, ""
}

func post(hc *http.Client, url string, body []byte, out any) string {
	resp, err := hc.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return "transport"
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(resp.Body)
	if err != nil {
		return "reading the answer"
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error  string `json:"error"`
			Result struct {
				Checks []struct {
					Name   string `json:"name"`
					Passed bool   `json:"passed"`
				} `json:"checks"`
			} `json:"result"`
		}
		json.Unmarshal(rb, &e)
		kind := fmt.Sprintf("status %d", resp.StatusCode)
		for _, c := range e.Result.Checks {
			if !c.Passed {
				return kind + " (" + c.Name + ")"
			}
		}
		if e.Error != "" {
			kind += " (" + e.Error + ")"
		}
		return kind
	}
	if r, ok := out.(*json.RawMessage); ok {
		*r = rb
		return ""
	}
	if err := json.Unmarshal(rb, out); err != nil {
		return "the answer is not JSON"
	}
	return ""
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(float64(len(d)-1) * p)
	return d[i]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func (r *results) print(out io.Writer, o options, w *workload, ref time.Duration) {
	sort.Slice(r.total, func(i, j int) bool { return r.total[i] < r.total[j] })
	sort.Slice(r.attestRTT, func(i, j int) bool { return r.attestRTT[i] < r.attestRTT[j] })
	n := r.ok.Load()
	fmt.Fprintf(out, "attestload: %s, %d CPUs (GOMAXPROCS %d), %s, GOGC %d\n", runtime.Version(), runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOARCH, gcPercent())
	where := map[bool]string{true: "HTTP", false: "HTTPS, keep-alive"}[o.plain]
	if o.replicas > 1 {
		where += fmt.Sprintf(", %d replicas", o.replicas)
	}
	if o.replayStore != "" {
		where += ", shared replay store"
	}
	if o.url != "" {
		where = o.url + ", keep-alive"
	}
	fmt.Fprintf(out, "workload: %d hosts (software ECC P-256 EK and AK), event log %d bytes, %d events; credential %s; %s\n",
		o.hosts, len(w.log), w.events, o.format, where)
	fmt.Fprintf(out, "measured: %d verified attestations in %.2fs after %d warmup\n", n, r.elapsed.Seconds(), o.warmup)
	fmt.Fprintf(out, "throughput: %.0f verified attestations/s\n", float64(n)/r.elapsed.Seconds())
	fmt.Fprintf(out, "latency, whole exchange (nonce + attest + activate): p50 %s  p90 %s  p99 %s  max %s\n",
		ms(percentile(r.total, .5)), ms(percentile(r.total, .9)), ms(percentile(r.total, .99)), ms(percentile(r.total, 1)))
	fmt.Fprintf(out, "latency, POST /v1/attest alone:                    p50 %s  p90 %s  p99 %s  max %s\n",
		ms(percentile(r.attestRTT, .5)), ms(percentile(r.attestRTT, .9)), ms(percentile(r.attestRTT, .99)), ms(percentile(r.attestRTT, 1)))
	fmt.Fprintf(out, "errors: %d\n", r.errors.Load())
	var kinds []string
	r.errKinds.Range(func(k, v any) bool {
		kinds = append(kinds, fmt.Sprintf("  %s: %d", k, v.(*atomic.Int64).Load()))
		return true
	})
	slices.Sort(kinds)
	for _, k := range kinds {
		fmt.Fprintln(out, k)
	}
	if n > 0 && r.cpu > 0 {
		who := "service and hosts together"
		if o.url != "" {
			who = "the hosts only: the service is another process"
		}
		fmt.Fprintf(out, "process CPU: %s per attestation (%s)\n", ms(r.cpu/time.Duration(n)), who)
	}
	if ref > 0 {
		fmt.Fprintf(out, "reference: in-process Verify + Evaluate of the same evidence, one goroutine: %s per attestation (%.0f/s per core)\n",
			ms(ref), 1/ref.Seconds())
	}
}

// writeConfig writes a csv attest serve configuration that trusts this
// load (any EK: the hosts are made at each run) with the workload's
// policies, a CA, a TLS certificate and a nonce key.
func (w *workload) writeConfig(dir, format string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	ca, caKey, err := servicetest.NewCA("attestload CA", time.Now())
	if err != nil {
		return err
	}
	keyPEM := func(k *ecdsa.PrivateKey) []byte {
		der, _ := x509.MarshalPKCS8PrivateKey(k)
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	tc := tlsCert(ca, caKey.(*ecdsa.PrivateKey))
	nonceKey := make([]byte, 32)
	rand.Read(nonceKey)
	sum := sha256.Sum256(nonceKey)
	files := map[string][]byte{
		"ca.pem":       pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}),
		"ca.key":       keyPEM(caKey.(*ecdsa.PrivateKey)),
		"tls.pem":      pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tc.Certificate[0]}),
		"tls.key":      keyPEM(tc.PrivateKey.(*ecdsa.PrivateKey)),
		"nonce.key":    []byte(fmt.Sprintf("%x\n", append(nonceKey, sum[:]...))),
		"attest.yaml":  []byte(w.policy),
		"boot-ci.yaml": []byte(w.ciPolicy),
		"attest-serve.yaml": []byte(`# csv attest serve configuration for bench/attestload (-url https://127.0.0.1:8443 -ca ca.pem)
listen: 127.0.0.1:8443
tls: {certificate: tls.pem, key: tls.key}
policy: attest.yaml
ci_policies: [boot-ci.yaml]
ek:
  trust_any_unsafe: true   # the load's hosts are software, made at each run
nonce:
  key_files: [nonce.key]
  max_used_per_ek: ` + fmt.Sprint(maxUsedNoncesPerEK) + `   # a few hosts, thousands of attestations/s each
credential:
  format: ` + format + `
  claims_oid: 1.3.6.1.4.1.99999.1
  ca_certificate: ca.pem
  ca_key: ca.key
`),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return err
		}
	}
	fmt.Printf("wrote %s/attest-serve.yaml: csv attest serve --config %s/attest-serve.yaml 2>/dev/null &\n", dir, dir)
	return nil
}

func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}
