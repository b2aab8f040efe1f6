package csv

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/signing/fsverity"
)

// TestIPECompressedModule: the kernel loads m.ko.gz as it is stored
// (finit_module with MODULE_INIT_COMPRESSED_FILE) and IPE measures that
// file, so an fs-verity rule on the decompressed module's digest never
// matches on the host: csv must not allow m.ko.gz by it under KMODULE,
// and a DENY rule on some fs-verity digest (the stored file's, perhaps)
// blocks it. A gzip'd program, laid down decompressed before it runs, is
// still judged by its content under EXECUTE.
func TestIPECompressedModule(t *testing.T) {
	d := fsverity.New()
	d.Write(elfImg)
	dg := hex.EncodeToString(d.Sum(nil))
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write(elfImg)
	w.Close()
	dir := tree(t, map[string][]byte{"lib/modules/m.ko.gz": gz.Bytes(), "bin/x.gz": gz.Bytes(), "lib/modules/plain.ko": elfImg})
	judge := func(pol string) map[string]Result {
		p, err := cipolicy.Parse([]byte(pol), "h.ipe")
		if err != nil {
			t.Fatal(err)
		}
		set, err := cipolicy.NewSet(cipolicy.SetOptions{}, p)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]Result{}
		for _, r := range validate(t, set, Options{}, dir).Results {
			out[r.Path] = r
		}
		return out
	}
	allow := judge("policy_name=h policy_version=1.0.0\nDEFAULT action=DENY\n" +
		"op=KMODULE fsverity_digest=sha256:" + dg + " action=ALLOW\nop=EXECUTE fsverity_digest=sha256:" + dg + " action=ALLOW\n")
	for path, want := range map[string]bool{"lib/modules/m.ko.gz!/m.ko": false, "bin/x.gz!/x": true, "lib/modules/plain.ko": true} {
		r, ok := allow[path]
		if !ok {
			t.Fatalf("no result for %s: %+v", path, allow)
		}
		if r.Decision.Allowed() != want {
			t.Errorf("%s: allowed %v, want %v: %s", path, r.Decision.Allowed(), want, r.Decision.Reason)
		}
	}
	if r := allow["lib/modules/m.ko.gz!/m.ko"]; !strings.Contains(r.Decision.Reason, "as it is stored") {
		t.Errorf("reason does not say why: %s", r.Decision.Reason)
	}
	other := strings.Repeat("ab", 32)
	deny := judge("policy_name=h policy_version=1.0.0\nDEFAULT action=ALLOW\n" +
		"op=KMODULE fsverity_digest=sha256:" + other + " action=DENY\n")
	if r := deny["lib/modules/m.ko.gz!/m.ko"]; r.Decision.Allowed() {
		t.Errorf("m.ko.gz under a DENY rule on an fs-verity digest csv cannot compare: allowed: %s", r.Decision.Reason)
	}
	if r := deny["lib/modules/plain.ko"]; !r.Decision.Allowed() {
		t.Errorf("plain.ko: blocked: %s", r.Decision.Reason)
	}
}

// TestIPERelocatableIsKModule: a relocatable ELF file (ET_REL) is never
// executed by the kernel, and insmod loads one whatever its name: under
// a policy that allows every EXECUTE and denies every KMODULE, an
// unsigned module named helper.bin is blocked, as the host would refuse
// to load it, while an executable is allowed.
func TestIPERelocatableIsKModule(t *testing.T) {
	rel := append([]byte(nil), elfImg...)
	rel[16], rel[17] = 1, 0 // e_type ET_REL
	dir := tree(t, map[string][]byte{"lib/helper.bin": rel, "bin/tool": elfImg})
	p, err := cipolicy.Parse([]byte("policy_name=h policy_version=1.0.0\nDEFAULT op=EXECUTE action=ALLOW\nDEFAULT action=DENY\n"), "h.ipe")
	if err != nil {
		t.Fatal(err)
	}
	set, err := cipolicy.NewSet(cipolicy.SetOptions{}, p)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Result{}
	for _, r := range validate(t, set, Options{}, dir).Results {
		got[r.Path] = r
	}
	if r := got["lib/helper.bin"]; r.Err != nil || r.Decision.Allowed() || !strings.Contains(r.Decision.Reason, "op KMODULE") {
		t.Errorf("helper.bin (ET_REL): %s %q (error %v)", r.Decision.Verdict, r.Decision.Reason, r.Err)
	}
	if r := got["bin/tool"]; !r.Decision.Allowed() {
		t.Errorf("tool: %s %q", r.Decision.Verdict, r.Decision.Reason)
	}
}
