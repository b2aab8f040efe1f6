package csv

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/dmverity"
)

// TestImagesInARun: ext4 images (mkfs.ext4) with the sidecars veritysetup
// format and openssl smime make are judged in a run: a dmverity_sha256
// rule written from veritysetup's root hash allows one, a signer rule the
// other through its IMAGE.roothash.p7s; an image changed after its hash
// device was made is blocked as malformed, and an image without sidecars
// is blocked (no rule on its SHA256). The sidecars themselves are no
// format csv judges.
func TestImagesInARun(t *testing.T) {
	mkfs := testenv.Tool(t, "mkfs.ext4")
	vs := testenv.Tool(t, "veritysetup")
	openssl := testenv.Tool(t, "openssl")
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{CommonName: "image signer"})
	dir := t.TempDir()
	keys := t.TempDir()
	src := filepath.Join(keys, "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "hello"), []byte("hello from an image\n"), 0o644)
	rootRE := regexp.MustCompile(`(?m)^Root hash:\s+([0-9a-f]{64})$`)
	roots := map[string]string{}
	for _, name := range []string{"hashed.img", "signed.img", "changed.img", "bare.img"} {
		img := filepath.Join(dir, name)
		if out, err := exec.Command(mkfs, "-q", "-F", "-d", src, img, "2M").CombinedOutput(); err != nil {
			t.Fatalf("mkfs.ext4: %v\n%s", err, out)
		}
		if name == "bare.img" {
			continue
		}
		out, err := exec.Command(vs, "format", img, img+".verity").CombinedOutput()
		if err != nil {
			t.Fatalf("veritysetup: %v\n%s", err, out)
		}
		roots[name] = string(rootRE.FindSubmatch(out)[1])
	}
	os.WriteFile(filepath.Join(keys, "rh"), []byte(roots["signed.img"]), 0o600)
	os.WriteFile(filepath.Join(keys, "key.pem"), testca.KeyPEM(t, leaf.Key), 0o600)
	os.WriteFile(filepath.Join(keys, "cert.pem"), testca.PEM(leaf.Cert), 0o600)
	if out, err := exec.Command(openssl, "smime", "-sign", "-nocerts", "-noattr", "-binary", "-in", filepath.Join(keys, "rh"),
		"-inkey", filepath.Join(keys, "key.pem"), "-signer", filepath.Join(keys, "cert.pem"), "-outform", "der",
		"-out", filepath.Join(dir, "signed.img.roothash.p7s")).CombinedOutput(); err != nil {
		t.Fatalf("openssl smime: %v\n%s", err, out)
	}
	changed := filepath.Join(dir, "changed.img")
	b, _ := os.ReadFile(changed)
	b[len(b)-1] ^= 1
	os.WriteFile(changed, b, 0o644)

	certs := []*signing.Certificate{sigCert(t, leaf.Cert), sigCert(t, ca.Intermediate.Cert), sigCert(t, ca.Root.Cert)}
	set := policyFor(t,
		fmt.Sprintf("{id: by-root, action: allow, dmverity_sha256: %s}", roots["hashed.img"]),
		fmt.Sprintf("{id: by-root-changed, action: allow, dmverity_sha256: %s}", roots["changed.img"]),
		fmt.Sprintf("{id: image-signer, action: allow, signer: {tbs: %s, level: issuer}}", sigCert(t, ca.Intermediate.Cert).TBSHashHex()))
	rep := validate(t, set, Options{Certificates: certs}, dir)
	got := map[string]*Result{}
	for i := range rep.Results {
		got[rep.Results[i].Path] = &rep.Results[i]
	}
	for p, w := range map[string]string{"hashed.img": "allowed/by-root", "signed.img": "allowed/image-signer", "changed.img": "blocked/", "bare.img": "blocked/"} {
		r := got[p]
		if r == nil {
			t.Errorf("%s: not judged", p)
			continue
		}
		if g := fmt.Sprintf("%s/%s", r.Decision.Verdict, r.Decision.Rule); g != w || r.Format != cipolicy.FormatImage {
			t.Errorf("%s (%s): %s, want %s (%s)", p, r.Format, g, w, r.Decision.Reason)
		}
	}
	if r := got["hashed.img"]; r != nil && hex.EncodeToString(r.Digests.Get(cipolicy.DMVeritySHA256)) != roots["hashed.img"] {
		t.Errorf("hashed.img: dmverity_sha256 %x", r.Digests.Get(cipolicy.DMVeritySHA256))
	}
	var me *MalformedBinaryError
	if r := got["changed.img"]; r == nil || !errors.As(r.Err, &me) || !errors.Is(r.Err, dmverity.ErrMismatch) {
		t.Errorf("changed.img: %v", got["changed.img"].Err)
	}
	if len(rep.Results) != 4 {
		for _, r := range rep.Results {
			t.Logf("judged %s (%s)", r.Path, r.Format)
		}
		t.Errorf("%d files judged, want the 4 images", len(rep.Results))
	}
}
