package csv

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	authcat "github.com/codesignval/csv/signing/authenticode/catalog"
)

// catalogTree writes an unsigned PE driver and an ELF tool, and a catalog
// of both signed by s at dir/pkg.cat; then an uncatalogued extra.exe.
func catalogTree(t *testing.T, s *signer) (dir string, driver []byte) {
	t.Helper()
	driver = testbin.PE(testbin.PEOptions{Data: []byte("catalogued driver")})
	dir = tree(t, map[string][]byte{"driver.sys": driver, "bin/tool": elfImg})
	res, err := MakeCatalog(context.Background(), CatalogOptions{Key: s.leaf.Key, Chain: s.chain}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Members) != 2 {
		t.Fatalf("%d members, want 2", len(res.Members))
	}
	if err := WriteCatalog(filepath.Join(dir, "pkg.cat"), res.DER); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "extra.exe"), testbin.PE(testbin.PEOptions{Data: []byte("not catalogued")}), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, driver
}

func byPath(rep *Report) map[string]Result {
	m := map[string]Result{}
	for _, r := range rep.Results {
		m[r.Path] = r
	}
	return m
}

// TestCatalogAdmitsMembers: an unsigned PE and an ELF file listed in a
// catalog of the tree count as signed by its signer; the catalog itself is
// reported, allowed, with its member count; a file it does not list is
// blocked; the catalog is read once in the run.
func TestCatalogAdmitsMembers(t *testing.T) {
	s := newSigner(t)
	dir, _ := catalogTree(t, s)
	var mu sync.Mutex
	reads := map[string]int{}
	holdInspection(t, func(name string) {
		mu.Lock()
		reads[name]++
		mu.Unlock()
	})
	got := byPath(validate(t, s.pcaPolicy(t), Options{}, dir))
	for _, name := range []string{"driver.sys", "bin/tool"} {
		r := got[name]
		if !r.Decision.Allowed() || r.Decision.Kind != cipolicy.KindAllowedBySigner || r.Catalog != filepath.ToSlash(dir)+"/pkg.cat" {
			t.Errorf("%s: %+v, catalog %q; want allowed by the catalog's signer", name, r.Decision, r.Catalog)
		}
		if !strings.Contains(r.Decision.Reason, "a member of") {
			t.Errorf("%s: the reason %q does not name the catalog", name, r.Decision.Reason)
		}
	}
	if r := got["extra.exe"]; r.Decision.Allowed() || r.Catalog != "" {
		t.Errorf("extra.exe: %+v", r.Decision)
	}
	if r := got["pkg.cat"]; !r.Decision.Allowed() || r.Decision.Kind != cipolicy.KindCatalog || !strings.Contains(r.Decision.Reason, "2 members") {
		t.Errorf("pkg.cat: %+v", r.Decision)
	}
	if reads["pkg.cat"] != 0 || reads["driver.sys"] != 1 {
		t.Errorf("the run's main pass read pkg.cat %d times and driver.sys %d times, want 0 (read while indexing) and 1", reads["pkg.cat"], reads["driver.sys"])
	}
}

// TestCatalogTamperedOrAbsent: a catalog with a byte of its list changed
// admits nothing and is blocked itself; without the catalog the driver is
// blocked, and with it given as --catalog it is allowed again; a --catalog
// that does not verify fails the run.
func TestCatalogTamperedOrAbsent(t *testing.T) {
	s := newSigner(t)
	dir, driver := catalogTree(t, s)
	cat := filepath.Join(dir, "pkg.cat")
	good, err := os.ReadFile(cat)
	if err != nil {
		t.Fatal(err)
	}
	digest, err := hexDigest(authHex(t, driver))
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(good, digest)
	if i < 0 {
		t.Fatal("the driver's digest is not in the catalog")
	}
	bad := bytes.Clone(good)
	bad[i] ^= 1
	if err := os.WriteFile(cat, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	got := byPath(validate(t, s.pcaPolicy(t), Options{}, dir))
	if r := got["driver.sys"]; r.Decision.Allowed() {
		t.Errorf("driver.sys allowed by a tampered catalog: %+v", r.Decision)
	}
	if r := got["pkg.cat"]; r.Decision.Allowed() || r.Decision.Kind != cipolicy.KindNotAllowed || !strings.Contains(r.Decision.Reason, "does not verify") {
		t.Errorf("tampered pkg.cat: %+v", r.Decision)
	}

	outside := filepath.Join(t.TempDir(), "pkg.cat")
	if err := os.WriteFile(outside, good, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(cat); err != nil {
		t.Fatal(err)
	}
	if r := byPath(validate(t, s.pcaPolicy(t), Options{}, dir))["driver.sys"]; r.Decision.Allowed() {
		t.Errorf("driver.sys allowed without its catalog: %+v", r.Decision)
	}
	if r := byPath(validate(t, s.pcaPolicy(t), Options{Catalogs: []string{outside}}, dir))["driver.sys"]; !r.Decision.Allowed() || r.Catalog != outside {
		t.Errorf("driver.sys with --catalog: %+v, catalog %q", r.Decision, r.Catalog)
	}

	badOutside := filepath.Join(t.TempDir(), "bad.cat")
	if err := os.WriteFile(badOutside, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	v, err := NewValidator(s.pcaPolicy(t), Options{Catalogs: []string{badOutside}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Validate(context.Background(), dir); !errors.Is(err, ErrOptions) {
		t.Errorf("a --catalog that does not verify: %v, want ErrOptions", err)
	}
}

// TestCatalogDenyWins: a deny hash rule blocks a catalogued file.
func TestCatalogDenyWins(t *testing.T) {
	s := newSigner(t)
	dir, driver := catalogTree(t, s)
	inter := sigCert(t, s.ca.Intermediate.Cert)
	set := policyFor(t, fmt.Sprintf("{id: build, action: allow, signer: {tbs: %s, level: issuer}}", inter.TBSHashHex()),
		fmt.Sprintf("{id: bad-driver, action: deny, authenticode_sha256: %s}", authHex(t, driver)))
	got := byPath(validate(t, set, Options{}, dir))
	if r := got["driver.sys"]; r.Decision.Allowed() || r.Decision.Kind != cipolicy.KindDenied {
		t.Errorf("driver.sys: %+v, want denied", r.Decision)
	}
	if r := got["bin/tool"]; !r.Decision.Allowed() {
		t.Errorf("bin/tool: %+v", r.Decision)
	}
}

func hexDigest(s string) ([]byte, error) {
	b := make([]byte, len(s)/2)
	_, err := fmt.Sscanf(s, "%x", &b)
	return b, err
}

// BenchmarkValidateCatalogSigned validates a tree of 500 unsigned PE files
// (64 KiB each) listed in one catalog, with a signer rule for the catalog's
// signer ("catalog"), against the same tree judged by a hash rule per file
// ("hash"): what indexing the catalog and looking each file up costs over
// hashing.
func BenchmarkValidateCatalogSigned(b *testing.B) {
	ca := testca.New(b)
	leaf := ca.Leaf(b, testca.LeafOptions{CommonName: "Build Signing"})
	s := &signer{ca: ca, leaf: leaf, chain: []*x509.Certificate{leaf.Cert, ca.Intermediate.Cert}}
	files := map[string][]byte{}
	for i := range 500 {
		files[fmt.Sprintf("d%03d/f%03d.sys", i/50, i)] = testbin.PE(testbin.PEOptions{Data: bytes.Repeat([]byte{byte(i), byte(i >> 8)}, 32<<10)})
	}
	dir := b.TempDir()
	for p, data := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	res, err := MakeCatalog(context.Background(), CatalogOptions{Key: s.leaf.Key, Chain: s.chain}, dir)
	if err != nil {
		b.Fatal(err)
	}
	if err := WriteCatalog(filepath.Join(dir, "pkg.cat"), res.DER); err != nil {
		b.Fatal(err)
	}
	inter, err := signing.ParseCertificate(s.ca.Intermediate.Cert.Raw)
	if err != nil {
		b.Fatal(err)
	}
	var hashRules []string
	for p := range files {
		in := InspectFile(context.Background(), filepath.Join(dir, filepath.FromSlash(p)), nil, InspectOptions{})
		hashRules = append(hashRules, fmt.Sprintf("{id: h%d, action: allow, authenticode_sha256: %x}", len(hashRules), in.Digests.Get(cipolicy.AuthenticodeSHA256)))
	}
	for _, bc := range []struct {
		name  string
		rules []string
	}{
		{"catalog", []string{fmt.Sprintf("{id: build, action: allow, signer: {tbs: %s, level: issuer}}", inter.TBSHashHex())}},
		{"hash", hashRules},
	} {
		b.Run(bc.name, func(b *testing.B) {
			src := "format: csv-policy/v1\nname: bench\nrules:\n"
			for _, r := range bc.rules {
				src += "  - " + r + "\n"
			}
			p, err := cipolicy.Parse([]byte(src), "bench.yaml")
			if err != nil {
				b.Fatal(err)
			}
			set, err := cipolicy.NewSet(cipolicy.SetOptions{}, p)
			if err != nil {
				b.Fatal(err)
			}
			v, err := NewValidator(set, Options{})
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				rep, err := v.Validate(context.Background(), dir)
				if err != nil {
					b.Fatal(err)
				}
				if rep.Summary.Allowed != 501 || rep.Summary.Blocked != 0 {
					b.Fatalf("%d allowed, %d blocked", rep.Summary.Allowed, rep.Summary.Blocked)
				}
			}
		})
	}
}

// TestCatalogGivenTwice: a catalog of the tree also given with --catalog
// is indexed once: a member carries its signature once.
func TestCatalogGivenTwice(t *testing.T) {
	s := newSigner(t)
	dir, _ := catalogTree(t, s)
	cat := filepath.Join(dir, "pkg.cat")
	r := byPath(validate(t, s.pcaPolicy(t), Options{Catalogs: []string{cat}}, dir))["driver.sys"]
	if !r.Decision.Allowed() || len(r.Signatures) != 1 || r.Catalog != cat {
		t.Fatalf("driver.sys: %+v, %d signatures, catalog %q", r.Decision, len(r.Signatures), r.Catalog)
	}
	// Given twice with --catalog: once too.
	again := filepath.Join(dir, ".", "pkg.cat")
	r = byPath(validate(t, s.pcaPolicy(t), Options{Catalogs: []string{cat, again}}, dir))["driver.sys"]
	if !r.Decision.Allowed() || len(r.Signatures) != 1 || r.Catalog != cat {
		t.Fatalf("driver.sys with --catalog twice: %+v, %d signatures, catalog %q", r.Decision, len(r.Signatures), r.Catalog)
	}
}

// manyCatalogs returns an index of n catalogs, each the same verified
// catalog of driver (a PE file) and driver's result.
func manyCatalogs(tb testing.TB, n int) (*catalogIndex, Result) {
	tb.Helper()
	ca := testca.New(tb)
	leaf := ca.Leaf(tb, testca.LeafOptions{CommonName: "Build Signing"})
	driver := testbin.PE(testbin.PEOptions{Data: []byte("catalogued driver")})
	dir := tree(tb, map[string][]byte{"driver.sys": driver})
	res, err := MakeCatalog(context.Background(), CatalogOptions{Key: leaf.Key, Chain: []*x509.Certificate{leaf.Cert, ca.Intermediate.Cert}}, dir)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := authcat.Parse(res.DER)
	if err != nil {
		tb.Fatal(err)
	}
	_, v, err := c.Verify(authenticode.VerifyOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	x := &catalogIndex{byHash: map[memberKey][]int{}}
	for i := range n {
		x.add(fmt.Sprintf("c%05d.cat", i), v)
	}
	in := InspectFile(context.Background(), filepath.Join(dir, "driver.sys"), nil, InspectOptions{})
	return x, Result{Format: in.Format, Digests: in.Digests}
}

// TestCatalogAdmitOrder: a file that is a member of several catalogs is
// admitted by each once, in the order they were indexed; one that is a
// member of none by none.
func TestCatalogAdmitOrder(t *testing.T) {
	x, r := manyCatalogs(t, 3)
	var sub cipolicy.Subject
	if names := x.admit(&r, &sub); !slices.Equal(names, []string{"c00000.cat", "c00001.cat", "c00002.cat"}) || len(sub.Signatures) != 3 {
		t.Errorf("admitted by %v with %d signatures", names, len(sub.Signatures))
	}
	other := Result{Format: r.Format, Digests: cipolicy.Digests{}}
	other.Digests.Set(cipolicy.AuthenticodeSHA256, make([]byte, 32))
	if names := x.admit(&other, &cipolicy.Subject{}); names != nil {
		t.Errorf("a file of no catalog admitted by %v", names)
	}
}

// BenchmarkCatalogAdmitManyCatalogs is the lookup of a file that no
// catalog lists among 10,000 catalogs: a map lookup per digest, not one
// per catalog (a tree of many small catalogs made judging quadratic).
func BenchmarkCatalogAdmitManyCatalogs(b *testing.B) {
	x, r := manyCatalogs(b, 10000)
	r.Digests = cipolicy.Digests{}
	r.Digests.Set(cipolicy.AuthenticodeSHA256, make([]byte, 32))
	r.Digests.Set(cipolicy.AuthenticodeSHA1, make([]byte, 20))
	for b.Loop() {
		if names := x.admit(&r, &cipolicy.Subject{}); names != nil {
			b.Fatal(names)
		}
	}
}

// TestCatalogNestedSignatureDenied: a catalog signed by the build's signer
// whose signature nests one by a signer a deny rule for driver.sys names
// (Windows reads the signatures nested in a catalog's one level deep):
// driver.sys is denied, as a PE file carrying the same two signatures is,
// not admitted by the outer one; without the deny rule, each signature
// admits. (A deny rule whose scope holds the catalog denies the catalog:
// TestCatalogDenied.)
func TestCatalogNestedSignatureDenied(t *testing.T) {
	s, bad := newSigner(t), newSigner(t)
	dir, _ := catalogTree(t, s)
	cat := filepath.Join(dir, "pkg.cat")
	der, err := os.ReadFile(cat)
	if err != nil {
		t.Fatal(err)
	}
	c, err := authcat.Parse(der)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := authenticode.NewSigner(bad.leaf.Key, bad.chain, authenticode.SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	inner, err := authcat.Sign(context.Background(), signer, c.CTL())
	if err != nil {
		t.Fatal(err)
	}
	if der, err = authenticode.Nest(der, inner); err != nil {
		t.Fatal(err)
	}
	if err := WriteCatalog(cat, der); err != nil {
		t.Fatal(err)
	}
	allow := fmt.Sprintf("{id: build, action: allow, signer: {tbs: %s, level: issuer}}", sigCert(t, s.ca.Intermediate.Cert).TBSHashHex())
	deny := fmt.Sprintf("{id: leaked, action: deny, signer: {tbs: %s, level: issuer}, paths: [driver.sys]}", sigCert(t, bad.ca.Intermediate.Cert).TBSHashHex())
	got := byPath(validate(t, policyFor(t, allow, deny), Options{}, dir))
	if r := got["driver.sys"]; r.Decision.Allowed() || r.Decision.Kind != cipolicy.KindDenied || r.Catalog != filepath.ToSlash(cat) {
		t.Errorf("driver.sys: %+v, catalog %q; want denied by the nested signature's signer", r.Decision, r.Catalog)
	}
	if r := got["bin/tool"]; !r.Decision.Allowed() {
		t.Errorf("bin/tool, out of the deny rule's scope: %+v", r.Decision)
	}
	r := byPath(validate(t, policyFor(t, allow), Options{}, dir))["driver.sys"]
	if !r.Decision.Allowed() || len(r.Signatures) != 2 || r.Catalog != filepath.ToSlash(cat) {
		t.Errorf("driver.sys: %+v, %d signatures, catalog %q; want allowed by the catalog's signer", r.Decision, len(r.Signatures), r.Catalog)
	}
}

// TestCatalogDenied: a deny rule matching a catalog of the tree (its
// SHA256) blocks it and takes back what it admits: its members are judged
// on their own; given with --catalog, it stops the run.
func TestCatalogDenied(t *testing.T) {
	s := newSigner(t)
	dir, _ := catalogTree(t, s)
	cat := filepath.Join(dir, "pkg.cat")
	der, err := os.ReadFile(cat)
	if err != nil {
		t.Fatal(err)
	}
	allow := fmt.Sprintf("{id: build, action: allow, signer: {tbs: %s, level: issuer}}", sigCert(t, s.ca.Intermediate.Cert).TBSHashHex())
	set := policyFor(t, allow, fmt.Sprintf("{id: leaked-catalog, action: deny, sha256: %x}", sha256.Sum256(der)))
	got := byPath(validate(t, set, Options{}, dir))
	if r := got["pkg.cat"]; r.Decision.Allowed() || r.Decision.Kind != cipolicy.KindDenied || !strings.Contains(r.Decision.Reason, "leaked-catalog") {
		t.Errorf("pkg.cat: %+v, want denied", r.Decision)
	}
	for _, name := range []string{"driver.sys", "bin/tool"} {
		if r := got[name]; r.Decision.Allowed() || r.Catalog != "" {
			t.Errorf("%s: %+v, catalog %q; want blocked", name, r.Decision, r.Catalog)
		}
	}
	v, err := NewValidator(set, Options{Catalogs: []string{cat}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Validate(context.Background(), t.TempDir()); !errors.Is(err, ErrOptions) || !strings.Contains(err.Error(), "leaked-catalog") {
		t.Errorf("a denied --catalog: %v", err)
	}
}

// TestCatalogSHA1MemberDigestPolicy: a v1 catalog (SHA1 members) signed
// over SHA256 binds its members by SHA1: a policy that accepts SHA256
// digests only refuses them, as it refuses a PE file signed over a SHA1
// hash; one that accepts SHA1 admits them.
func TestCatalogSHA1MemberDigestPolicy(t *testing.T) {
	s := newSigner(t)
	driver := testbin.PE(testbin.PEOptions{Data: []byte("catalogued driver")})
	dir := tree(t, map[string][]byte{"driver.sys": driver})
	kind, d, err := authcat.HashFile(bytes.NewReader(driver), int64(len(driver)), crypto.SHA1)
	if err != nil {
		t.Fatal(err)
	}
	ctl, err := authcat.Build([]authcat.Entry{{Name: "driver.sys", Kind: kind, Hash: crypto.SHA1, Digest: d}}, authcat.BuildOptions{Version: 1})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := authenticode.NewSigner(s.leaf.Key, s.chain, authenticode.SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	der, err := authcat.Sign(context.Background(), signer, ctl)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteCatalog(filepath.Join(dir, "pkg.cat"), der); err != nil {
		t.Fatal(err)
	}
	allow := fmt.Sprintf("{id: build, action: allow, signer: {tbs: %s, level: issuer}}", sigCert(t, s.ca.Intermediate.Cert).TBSHashHex())
	for _, tc := range []struct {
		digests string
		allowed bool
	}{
		{"[sha256]", false},
		{"[sha1, sha256]", true},
	} {
		src := "format: csv-policy/v1\nname: test\nversion: '1'\ndigest_algorithms: " + tc.digests + "\nrules:\n  - " + allow + "\n"
		p, err := cipolicy.Parse([]byte(src), "test.yaml")
		if err != nil {
			t.Fatal(err)
		}
		set, err := cipolicy.NewSet(cipolicy.SetOptions{}, p)
		if err != nil {
			t.Fatal(err)
		}
		r := byPath(validate(t, set, Options{}, dir))["driver.sys"]
		if r.Decision.Allowed() != tc.allowed || (!tc.allowed && !strings.Contains(r.Decision.Reason, "sha1")) {
			t.Errorf("digest_algorithms %s: %+v; want allowed %v", tc.digests, r.Decision, tc.allowed)
		}
	}
}

// TestCatalogScripts: csv sign --catalog lists a PowerShell script by the
// hash PowerShell's SIP computes (SPC_SIPINFO_OBJID, the SIP Windows looks
// scripts up by) and by its flat hash (which osslsigncode verify -catalog
// looks up); validation admits a script by its SIP hash member only, so a
// catalog listing the script by its flat hash alone admits nothing, and a
// script changed by one character is blocked.
func TestCatalogScripts(t *testing.T) {
	s := newSigner(t)
	script := []byte("Write-Output 'catalogued'\r\n")
	dir := tree(t, map[string][]byte{"deploy.ps1": script})
	res, err := MakeCatalog(context.Background(), CatalogOptions{Key: s.leaf.Key, Chain: s.chain}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Members) != 1 {
		t.Fatalf("%d members, want 1", len(res.Members))
	}
	cat := filepath.Join(dir, "pkg.cat")
	if err := WriteCatalog(cat, res.DER); err != nil {
		t.Fatal(err)
	}
	got := byPath(validate(t, s.pcaPolicy(t), Options{AllDigests: true}, dir))
	r := got["deploy.ps1"]
	if !r.Decision.Allowed() || r.Catalog == "" {
		t.Fatalf("deploy.ps1: %+v, catalog %q; want allowed by the catalog's signer", r.Decision, r.Catalog)
	}
	sip, flat := r.Digests.Get(cipolicy.AuthenticodeSHA256), r.Digests.Get(cipolicy.SHA256)
	der, err := os.ReadFile(cat)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(der, sip) || !bytes.Contains(der, flat) {
		t.Errorf("the catalog lists the script's SIP hash %v and flat hash %v, want both", bytes.Contains(der, sip), bytes.Contains(der, flat))
	}

	// The peer: osslsigncode accepts the script against the catalog (by
	// the flat member) and refuses it changed.
	ossl := testenv.Tool(t, "osslsigncode")
	tmp := t.TempDir()
	changed := filepath.Join(tmp, "deploy.ps1")
	if err := os.WriteFile(changed, append(bytes.Clone(script), '#'), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		in string
		ok bool
	}{{filepath.Join(dir, "deploy.ps1"), true}, {changed, false}} {
		out, err := exec.Command(ossl, "verify", "-CAfile", s.files.Root, "-catalog", cat, "-in", c.in).CombinedOutput()
		if (err == nil) != c.ok {
			t.Errorf("osslsigncode verify -catalog %s: %v, want ok %v\n%s", c.in, err, c.ok, out)
		}
	}

	// A catalog of the script's flat hash alone, as a flat member.
	ctl, err := authcat.Build([]authcat.Entry{{Name: "deploy.ps1", Kind: authcat.KindFlat, Hash: crypto.SHA256, Digest: flat}}, authcat.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := authenticode.NewSigner(s.leaf.Key, s.chain, authenticode.SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	flatOnly, err := authcat.Sign(context.Background(), signer, ctl)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cat, flatOnly, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := byPath(validate(t, s.pcaPolicy(t), Options{}, dir))["deploy.ps1"]; r.Decision.Allowed() {
		t.Errorf("deploy.ps1 admitted by a flat-hash member: %+v", r.Decision)
	}

	// The SIP catalog again, and the script changed.
	if err := WriteCatalog(cat, res.DER); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "deploy.ps1"), append(script, '#'), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := byPath(validate(t, s.pcaPolicy(t), Options{}, dir))["deploy.ps1"]; r.Decision.Allowed() {
		t.Errorf("a changed script admitted: %+v", r.Decision)
	}
}
