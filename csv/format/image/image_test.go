package image

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv/format"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/dmverity"
)

// mkfs makes a real filesystem image with the tool that makes it: an
// ext4 image (mkfs.ext4 -d), a squashfs (mksquashfs) or an EROFS
// (mkfs.erofs) of a small tree, padded to whole 4 KiB blocks.
func mkfs(t testing.TB, kind, dir string) string {
	t.Helper()
	src := filepath.Join(dir, "src")
	os.MkdirAll(filepath.Join(src, "bin"), 0o755)
	os.WriteFile(filepath.Join(src, "bin", "tool"), bytes.Repeat([]byte("#!/bin/sh\necho csv\n"), 900), 0o755)
	noise := make([]byte, 64<<10) // incompressible: a tree of several blocks
	rand.Read(noise)
	os.WriteFile(filepath.Join(src, "bin", "data"), noise, 0o644)
	img := filepath.Join(dir, kind+".img")
	var cmd *exec.Cmd
	switch kind {
	case Ext4:
		cmd = exec.Command(testenv.Tool(t, "mkfs.ext4"), "-q", "-F", "-E", "root_owner=0:0", "-U", "11111111-2222-3333-4444-555555555555", "-d", src, img, "4M")
	case Squashfs:
		cmd = exec.Command(testenv.Tool(t, "mksquashfs"), src, img, "-noappend", "-quiet")
	case EROFS:
		cmd = exec.Command(testenv.Tool(t, "mkfs.erofs"), "--quiet", "-T0", img, src)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	b, _ := os.ReadFile(img)
	if r := len(b) % 4096; r != 0 {
		b = append(b, make([]byte, 4096-r)...)
		os.WriteFile(img, b, 0o600)
	}
	return img
}

var rootRE = regexp.MustCompile(`(?m)^Root hash:\s+([0-9a-f]{64})$`)

// verity runs veritysetup format IMG IMG.verity and writes IMG.roothash.
func verity(t testing.TB, img string) []byte {
	t.Helper()
	out, err := exec.Command(testenv.Tool(t, "veritysetup"), "format", img, img+SuffixVerity).CombinedOutput()
	if err != nil {
		t.Fatalf("veritysetup format: %v\n%s", err, out)
	}
	m := rootRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no root hash in\n%s", out)
	}
	os.WriteFile(img+SuffixRootHash, append(m[1], '\n'), 0o600)
	root, _ := hex.DecodeString(string(m[1]))
	return root
}

type result struct {
	facts   format.Facts
	digests cipolicy.Digests
	err     error
}

// inspect runs the handler on the file at path as the pipeline does, with
// its sidecars.
func inspect(t testing.TB, path string, need cipolicy.Needs, certs []*signing.Certificate) *result {
	t.Helper()
	return inspectWith(t, path, need, &format.InspectOptions{Certificates: certs})
}

func inspectWith(t testing.TB, path string, need cipolicy.Needs, opts *format.InspectOptions) *result {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	st, _ := fh.Stat()
	buf := make([]byte, 64<<10)
	n, _ := fh.Read(buf[:min(st.Size(), format.SniffSize)])
	f := format.NewFile(fh, st.Size(), buf, n)
	f.Name = filepath.Base(path)
	f.Sidecar = func(s string) (*os.File, error) { return os.Open(path + s) }
	if !(Handler{}).Sniff(f) {
		t.Fatalf("%s: not sniffed as an image", path)
	}
	res := &result{}
	var p format.Pass
	finish, err := Handler{}.Inspect(f, need, opts, &p, &res.facts)
	if err != nil {
		res.err = err
		return res
	}
	if err := f.Stream(t.Context(), p.Writers()...); err != nil {
		t.Fatal(err)
	}
	if res.digests, err = p.Done(); err != nil {
		t.Fatal(err)
	}
	if finish != nil {
		res.err = finish()
	}
	return res
}

var all = cipolicy.AllNeeds()

// TestImages: for real images of each filesystem, the handler's
// dmverity_sha256 is veritysetup format's root hash, checked against the
// hash device veritysetup wrote; the root hash's signature (openssl smime,
// as systemd documents) verifies; a changed byte of the image, a changed
// hash device, a wrong IMAGE.roothash, a cut signature and a root hash
// without its hash device are malformed images; without any sidecar the
// image has no dm-verity digest.
func TestImages(t *testing.T) {
	openssl := testenv.Tool(t, "openssl")
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{CommonName: "image signer"})
	var certs []*signing.Certificate
	for _, c := range []*testca.Cert{leaf, ca.Intermediate, ca.Root} {
		sc, _ := signing.ParseCertificate(c.Cert.Raw)
		certs = append(certs, sc)
	}
	for _, kind := range []string{Ext4, Squashfs, EROFS} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			img := mkfs(t, kind, dir)
			if r := inspect(t, img, all, certs); r.err != nil || r.digests.Get(cipolicy.DMVeritySHA256) != nil || r.facts.Info.(*Info).Filesystem != kind {
				t.Fatalf("without sidecars: %v, %x, %+v", r.err, r.digests.Get(cipolicy.DMVeritySHA256), r.facts.Info)
			}
			root := verity(t, img)
			r := inspect(t, img, all, certs)
			if r.err != nil || !bytes.Equal(r.digests.Get(cipolicy.DMVeritySHA256), root) {
				t.Fatalf("with IMAGE.verity: %v, root %x, veritysetup %x", r.err, r.digests.Get(cipolicy.DMVeritySHA256), root)
			}
			if v := r.facts.Info.(*Info).Verity; v == nil || v.RootHash != hex.EncodeToString(root) {
				t.Errorf("info %+v", v)
			}

			key := filepath.Join(dir, "key.pem")
			cert := filepath.Join(dir, "cert.pem")
			os.WriteFile(key, testca.KeyPEM(t, leaf.Key), 0o600)
			os.WriteFile(cert, testca.PEM(leaf.Cert), 0o600)
			rh := filepath.Join(dir, "rh")
			os.WriteFile(rh, []byte(hex.EncodeToString(root)), 0o600)
			if out, err := exec.Command(openssl, "smime", "-sign", "-nocerts", "-noattr", "-binary", "-in", rh, "-inkey", key, "-signer", cert, "-outform", "der", "-out", img+SuffixSignature).CombinedOutput(); err != nil {
				t.Fatalf("openssl smime: %v\n%s", err, out)
			}
			r = inspect(t, img, all, certs)
			if r.err != nil || len(r.facts.Signatures) != 1 || !r.facts.Signatures[0].Verified() || r.facts.Signatures[0].Format != dmverity.SignatureFormat || !r.facts.Signed {
				t.Fatalf("signed image: %v, %+v", r.err, r.facts.Signatures)
			}

			isMalformed := func(what string, r *result) {
				t.Helper()
				var me *format.MalformedError
				if !errors.As(r.err, &me) || me.Format != cipolicy.FormatImage {
					t.Errorf("%s: %v, want a malformed image", what, r.err)
				}
			}
			data, _ := os.ReadFile(img)
			changed := bytes.Clone(data)
			changed[len(changed)-1] ^= 1
			os.WriteFile(img, changed, 0o600)
			r = inspect(t, img, all, certs)
			isMalformed("changed image", r)
			if !errors.Is(r.err, dmverity.ErrMismatch) {
				t.Errorf("changed image: %v", r.err)
			}
			os.WriteFile(img, data, 0o600)

			dev, _ := os.ReadFile(img + SuffixVerity)
			bad := bytes.Clone(dev)
			bad[len(bad)-100] ^= 1
			os.WriteFile(img+SuffixVerity, bad, 0o600)
			isMalformed("changed hash device", inspect(t, img, all, certs))
			bad = bytes.Clone(dev)
			bad[5] = 'X' // the superblock's signature
			os.WriteFile(img+SuffixVerity, bad, 0o600)
			isMalformed("bad superblock", inspect(t, img, all, certs))
			os.WriteFile(img+SuffixVerity, dev, 0o600)

			other := bytes.Clone(root)
			other[0] ^= 1
			os.WriteFile(img+SuffixRootHash, []byte(hex.EncodeToString(other)), 0o600)
			isMalformed("wrong IMAGE.roothash", inspect(t, img, all, certs))
			os.WriteFile(img+SuffixRootHash, []byte(hex.EncodeToString(root)), 0o600)

			sig, _ := os.ReadFile(img + SuffixSignature)
			os.WriteFile(img+SuffixSignature, sig[:len(sig)-2], 0o600)
			isMalformed("cut signature", inspect(t, img, all, certs))
			os.WriteFile(img+SuffixSignature, sig, 0o600)

			os.Remove(img + SuffixVerity)
			isMalformed("root hash without hash device", inspect(t, img, all, certs))
		})
	}
}

// TestSniff: the three magic numbers, and look-alikes refused.
func TestSniff(t *testing.T) {
	sq := make([]byte, 4096)
	copy(sq, "hsqs")
	sq[28] = 4
	er := make([]byte, 4096)
	copy(er[1024:], []byte{0xE2, 0xE1, 0xF5, 0xE0})
	er[1024+12] = 12
	ex := make([]byte, 4096)
	ex[1024+56], ex[1024+57] = 0x53, 0xEF
	ex[1024+24] = 2
	ex[1024+76] = 1
	for _, tc := range []struct {
		b    []byte
		want string
	}{{sq, Squashfs}, {er, EROFS}, {ex, Ext4}, {sq[:50], ""}, {make([]byte, 4096), ""}} {
		if got := Kind(tc.b); got != tc.want {
			t.Errorf("Kind = %q, want %q", got, tc.want)
		}
	}
	sq[28] = 3
	er[1024+12] = 30
	ex[1024+24] = 40
	for _, b := range [][]byte{sq, er, ex} {
		if k := Kind(b); k != "" {
			t.Errorf("look-alike sniffed as %s", k)
		}
	}
}

func lookPaths(names ...string) (string, error) {
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			return n, err
		}
	}
	return "", nil
}

// TestImageWithParams: an image without a hash device beside it is hashed
// with the run's dm-verity parameters (csv validate --verity-salt) into
// the root hash veritysetup format makes with them, salted or not, with
// other block sizes; IMAGE.roothash is checked against it, and a changed
// byte changes it.
func TestImageWithParams(t *testing.T) {
	vs := testenv.Tool(t, "veritysetup")
	for _, tc := range []struct {
		salt   string
		params dmverity.Params
		args   []string
	}{
		{"0123456789abcdef", dmverity.Params{Salt: []byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}}, []string{"--salt=0123456789abcdef"}},
		{"-", dmverity.Params{}, []string{"--salt=-"}},
		{"aa", dmverity.Params{Salt: []byte{0xaa}, DataBlockSize: 1024, HashBlockSize: 512}, []string{"--salt=aa", "--data-block-size=1024", "--hash-block-size=512"}},
	} {
		dir := t.TempDir()
		img := mkfs(t, Ext4, dir)
		args := append([]string{"format"}, tc.args...)
		out, err := exec.Command(vs, append(args, img, filepath.Join(dir, "hash"))...).CombinedOutput()
		if err != nil {
			t.Fatalf("veritysetup %v: %v\n%s", args, err, out)
		}
		m := rootRE.FindSubmatch(out)
		if m == nil {
			t.Fatalf("no root hash in\n%s", out)
		}
		want, _ := hex.DecodeString(string(m[1]))
		opts := &format.InspectOptions{Verity: &tc.params}
		r := inspectWith(t, img, all, opts)
		if r.err != nil || !bytes.Equal(r.digests.Get(cipolicy.DMVeritySHA256), want) {
			t.Fatalf("salt %s: %v, root %x, veritysetup %x", tc.salt, r.err, r.digests.Get(cipolicy.DMVeritySHA256), want)
		}
		// Without the parameters, no root hash.
		if r := inspect(t, img, all, nil); r.err != nil || r.digests.Get(cipolicy.DMVeritySHA256) != nil {
			t.Fatalf("without parameters: %v, root %x", r.err, r.digests.Get(cipolicy.DMVeritySHA256))
		}
		os.WriteFile(img+SuffixRootHash, append(m[1], '\n'), 0o600)
		if r := inspectWith(t, img, all, opts); r.err != nil {
			t.Fatalf("with IMAGE.roothash: %v", r.err)
		}
		b, _ := os.ReadFile(img)
		b[len(b)/2] ^= 1
		os.WriteFile(img, b, 0o600)
		var me *format.MalformedError
		if r := inspectWith(t, img, all, opts); !errors.As(r.err, &me) {
			t.Fatalf("a changed byte with IMAGE.roothash: %v", r.err)
		}
		os.Remove(img + SuffixRootHash)
		if r := inspectWith(t, img, all, opts); r.err != nil || bytes.Equal(r.digests.Get(cipolicy.DMVeritySHA256), want) {
			t.Fatalf("a changed byte: %v, root %x", r.err, r.digests.Get(cipolicy.DMVeritySHA256))
		}
	}
}
