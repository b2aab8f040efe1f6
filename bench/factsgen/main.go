// Command factsgen writes a facts file (docs/facts.md) of N generated
// records, for bench/facts.sh: judging recorded facts at scale without a
// million files on disk. Records are like bench/manyfiles.sh's files (ELF
// files of 14 KB, every digest csv computes of one: sha256 and
// fsverity_sha256, distinct per record, 1,000 to a directory), and every
// SIGNED-th one is a PE file signed by a generated build chain (leaf,
// issuing CA, root), recorded as verified, with its Authenticode digests
// and page hashes, as csv validate --record writes a signed build's.
//
//	factsgen [-n N] [-signed-every K] [-o FILE]   (FILE.gz: gzip)
//
// With -policy FILE it also writes a YAML policy allowing the build
// chain's issuing CA (level issuer) and every ELF file (all: true in
// format elf), the policy bench/facts.sh judges with.
package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"math/big"
	"os"
	"strings"
	"time"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv/facts"
	"github.com/codesignval/csv/signing"
)

func main() {
	n := flag.Int("n", 1000000, "records")
	every := flag.Int("signed-every", 10, "every K-th record is a signed PE file (0: none)")
	out := flag.String("o", "facts.jsonl", "output `FILE` (gzip if it ends in .gz)")
	policy := flag.String("policy", "", "also write the policy to `FILE`")
	flag.Parse()
	if err := run(*n, *every, *out, *policy); err != nil {
		fmt.Fprintln(os.Stderr, "factsgen:", err)
		os.Exit(1)
	}
}

func run(n, every int, out, policy string) error {
	chain, err := buildChain()
	if err != nil {
		return err
	}
	if policy != "" {
		p := fmt.Sprintf("format: csv-policy/v1\nname: facts-bench\nversion: 1.0.0\nrules:\n"+
			"  - {id: build, action: allow, signer: {tbs: %s, level: issuer}}\n"+
			"  - {id: elf, action: allow, formats: [elf], all: true}\n", chain[1].TBSHashHex())
		if err := os.WriteFile(policy, []byte(p), 0o644); err != nil {
			return err
		}
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	w, err := facts.NewWriter(bw, facts.NewHeader("factsgen", "bench/factsgen", time.Now()), facts.WriterOptions{Gzip: strings.HasSuffix(out, ".gz")})
	if err != nil {
		return err
	}
	var certs []facts.Certificate
	for _, c := range chain {
		certs = append(certs, facts.Certificate{DER: c.Raw, TBSHash: c.TBSHashHex(), Subject: c.CommonName()})
	}
	digest := func(i int, kind string) []byte {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], uint64(i))
		s := sha256.Sum256(append([]byte(kind), b[:]...))
		return s[:]
	}
	hexd := func(i int, kind string, size int) string { return hex.EncodeToString(digest(i, kind)[:size]) }
	for i := range n {
		r := &facts.Record{Root: "tree", Path: fmt.Sprintf("d%04d/f%07d", i/1000, i), Size: 14336}
		if every > 0 && i%every == every-1 {
			r.Path += ".exe"
			r.Format = cipolicy.FormatPE
			r.Signed = true
			r.Digests = map[cipolicy.HashAlgorithm]string{
				cipolicy.SHA256: hexd(i, "sha256", 32), cipolicy.AuthenticodeSHA256: hexd(i, "a256", 32),
				cipolicy.AuthenticodeSHA1: hexd(i, "a1", 20), cipolicy.PageSHA256: hexd(i, "p256", 32), cipolicy.PageSHA1: hexd(i, "p1", 20),
			}
			r.Certificates = certs
			r.Signatures = []facts.Signature{{Format: "authenticode", Verified: true, DigestAlgorithm: "SHA-256",
				Digest: r.Digests[cipolicy.AuthenticodeSHA256], SignatureAlgorithm: "ECDSA",
				Chains: [][]int{{0, 1, 2}}, Certificates: []int{0, 1}}}
		} else {
			r.Format = cipolicy.FormatELF
			r.Digests = map[cipolicy.HashAlgorithm]string{cipolicy.SHA256: hexd(i, "sha256", 32), cipolicy.FSVeritySHA256: hexd(i, "fsv", 32)}
			r.Signatures = []facts.Signature{}
		}
		if err := w.Write(r); err != nil {
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return f.Close()
}

// buildChain makes a root, an issuing CA and a code-signing leaf (ECDSA
// P-256: quick to make).
func buildChain() ([]*signing.Certificate, error) {
	now := time.Now()
	type node struct {
		cert *x509.Certificate
		key  *ecdsa.PrivateKey
	}
	mk := func(cn string, parent *node, ca bool, serial int64) (*node, []byte, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn, Organization: []string{"csv bench"}},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(10 * 365 * 24 * time.Hour), BasicConstraintsValid: true, IsCA: ca}
		if ca {
			tmpl.KeyUsage = x509.KeyUsageCertSign
		} else {
			tmpl.KeyUsage = x509.KeyUsageDigitalSignature
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}
		}
		pc, pk := tmpl, key
		if parent != nil {
			pc, pk = parent.cert, parent.key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, pc, &key.PublicKey, pk)
		if err != nil {
			return nil, nil, err
		}
		c, err := x509.ParseCertificate(der)
		return &node{c, key}, der, err
	}
	root, rootDER, err := mk("Bench Root", nil, true, 1)
	if err != nil {
		return nil, err
	}
	inter, interDER, err := mk("Bench Issuing CA", root, true, 2)
	if err != nil {
		return nil, err
	}
	_, leafDER, err := mk("Bench Build Signing", inter, false, 3)
	if err != nil {
		return nil, err
	}
	var out []*signing.Certificate
	for _, der := range [][]byte{leafDER, interDER, rootDER} {
		c, err := signing.ParseCertificate(der)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}
