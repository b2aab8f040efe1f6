package csv

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/testbin"
)

// tree writes files (path -> content) under a new temporary directory.
func tree(t testing.TB, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for p, b := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// policyFor returns a set whose single policy has the given YAML rules.
func policyFor(t *testing.T, rules ...string) *cipolicy.Set {
	t.Helper()
	src := "format: csv-policy/v1\nname: test\nversion: '1'\nrules:\n"
	if len(rules) == 0 {
		src += "  []\n"
	}
	for _, r := range rules {
		src += "  - " + r + "\n"
	}
	p, err := cipolicy.Parse([]byte(src), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := cipolicy.NewSet(cipolicy.SetOptions{}, p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func validate(t *testing.T, set *cipolicy.Set, opts Options, roots ...string) *Report {
	t.Helper()
	v, err := NewValidator(set, opts)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := v.Validate(context.Background(), roots...)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func paths(rep *Report) (judged, skipped []string) {
	for _, r := range rep.Results {
		judged = append(judged, r.Path)
	}
	for _, s := range rep.Skipped {
		skipped = append(skipped, s.Path)
	}
	return
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

var (
	peImg  = testbin.PE(testbin.PEOptions{})
	pe32   = testbin.PE(testbin.PEOptions{PE32: true})
	elfImg = testbin.ELF(testbin.ELFOptions{})
)

func TestDiscoveryByContentInOrder(t *testing.T) {
	dir := tree(t, map[string][]byte{
		"b/plugin.node":   peImg,                          // a PE with an unusual extension
		"a/tool":          elfImg,                         // an ELF without extension
		"a/readme.txt":    []byte("MZ but not a PE\n"),    // MZ text
		"a/notes.exe":     []byte("just text, named exe"), // extension lies
		"c/lib32.dll":     pe32,
		"c/sub/empty.bin": {},
	})
	rep := validate(t, policyFor(t), Options{}, dir)
	judged, skipped := paths(rep)
	if want := []string{"a/tool", "b/plugin.node", "c/lib32.dll"}; !slices.Equal(judged, want) {
		t.Errorf("judged %v, want %v", judged, want)
	}
	if want := []string{"a/notes.exe", "a/readme.txt", "c/sub/empty.bin"}; !slices.Equal(skipped, want) {
		t.Errorf("skipped %v, want %v", skipped, want)
	}
	if s := rep.Summary; s.Files != 3 || s.Blocked != 3 || s.Skipped != 3 {
		t.Errorf("summary %+v", s)
	}
	formats := map[string]Format{}
	for _, r := range rep.Results {
		formats[r.Path] = r.Format
	}
	if formats["b/plugin.node"] != FormatPE || formats["a/tool"] != FormatELF {
		t.Errorf("formats %v", formats)
	}
}

func TestFileArgumentsAndSeveralRoots(t *testing.T) {
	dir := tree(t, map[string][]byte{"x/app.exe": peImg, "y/app": elfImg})
	rep := validate(t, policyFor(t), Options{}, filepath.Join(dir, "x", "app.exe"), filepath.Join(dir, "y"))
	if len(rep.Results) != 2 {
		t.Fatalf("%d results", len(rep.Results))
	}
	if r := rep.Results[0]; r.Path != "app.exe" || r.DisplayPath() != filepath.ToSlash(filepath.Join(dir, "x", "app.exe")) {
		t.Errorf("file argument: path %q display %q", r.Path, r.DisplayPath())
	}
	if r := rep.Results[1]; r.Path != "app" || r.Root != filepath.Join(dir, "y") || r.DisplayPath() != filepath.ToSlash(filepath.Join(dir, "y", "app")) {
		t.Errorf("directory root: path %q root %q display %q", r.Path, r.Root, r.DisplayPath())
	}
}

func TestMissingRootIsAnError(t *testing.T) {
	v, _ := NewValidator(policyFor(t), Options{})
	_, err := v.Validate(context.Background(), filepath.Join(t.TempDir(), "nope"))
	if !errors.Is(err, ErrRoot) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v", err)
	}
}

func TestHashRulesDecide(t *testing.T) {
	bad := append(slices.Clone(peImg[:0x280]), make([]byte, 0)...) // truncated inside .text
	dir := tree(t, map[string][]byte{"ok.exe": peImg, "ok": elfImg, "denied": pe32, "other": testbin.ELF(testbin.ELFOptions{Class32: true}), "trunc.exe": bad})
	set := policyFor(t,
		fmt.Sprintf("{id: pe, action: allow, authenticode_sha256: %s}", authHex(t, peImg)),
		fmt.Sprintf("{id: elf, action: allow, sha256: %s}", sha(elfImg)),
		fmt.Sprintf("{id: pe32, action: allow, sha256: %s}", sha(pe32)),
		fmt.Sprintf("{id: no-pe32, action: deny, authenticode_sha256: %s}", authHex(t, pe32)),
	)
	rep := validate(t, set, Options{}, dir)
	got := map[string]string{}
	for _, r := range rep.Results {
		got[r.Path] = fmt.Sprintf("%s/%s/%s", r.Decision.Verdict, r.Decision.Kind, r.Decision.Rule)
	}
	want := map[string]string{
		"ok.exe":    "allowed/allowed-by-hash/pe",
		"ok":        "allowed/allowed-by-hash/elf",
		"denied":    "blocked/denied/no-pe32",
		"other":     "blocked/unsigned/",
		"trunc.exe": "blocked/malformed/",
	}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s: %s, want %s", p, got[p], w)
		}
	}
	if !rep.Failed() {
		t.Error("report not failed")
	}
	for _, r := range rep.Results {
		if r.Path == "trunc.exe" {
			var mb *MalformedBinaryError
			if !errors.As(r.Err, &mb) || mb.Offset != 0x200 || !strings.Contains(r.Decision.Reason, "offset 0x200") || !strings.Contains(r.Decision.Reason, "truncated") {
				t.Errorf("truncated PE: err %v, reason %q", r.Err, r.Decision.Reason)
			}
		}
	}
}

func authHex(t *testing.T, img []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "x.exe")
	if err := os.WriteFile(p, img, 0o644); err != nil {
		t.Fatal(err)
	}
	in := InspectFile(context.Background(), p, nil, InspectOptions{})
	if in.Err != nil {
		t.Fatal(in.Err)
	}
	return hex.EncodeToString(in.Digests.Get(cipolicy.AuthenticodeSHA256))
}

// TestOnlyNeededDigests checks that a policy of Authenticode SHA256 rules
// costs one hash per PE: no flat SHA256, no SHA1; and ELF files get none.
func TestOnlyNeededDigests(t *testing.T) {
	dir := tree(t, map[string][]byte{"a.exe": peImg, "b": elfImg})
	set := policyFor(t, fmt.Sprintf("{id: pe, action: allow, authenticode_sha256: %s}", authHex(t, peImg)))
	rep := validate(t, set, Options{}, dir)
	for _, r := range rep.Results {
		d := r.Digests
		switch r.Format {
		case FormatPE:
			if d.Get(cipolicy.AuthenticodeSHA256) == nil || d.Get(cipolicy.SHA256) != nil || d.Get(cipolicy.AuthenticodeSHA1) != nil {
				t.Errorf("PE digests: %+v", d)
			}
		case FormatELF:
			if d.Get(cipolicy.SHA256) != nil || d.Get(cipolicy.AuthenticodeSHA256) != nil {
				t.Errorf("ELF digests: %+v", d)
			}
		}
	}
	rep = validate(t, set, Options{AllDigests: true}, dir)
	for _, r := range rep.Results {
		if r.Digests.Get(cipolicy.SHA256) == nil || (r.Format == FormatPE && r.Digests.Get(cipolicy.AuthenticodeSHA1) == nil) {
			t.Errorf("--all-digests: %s: %+v", r.Path, r.Digests)
		}
	}
}

func TestIncludeExclude(t *testing.T) {
	dir := tree(t, map[string][]byte{"bin/a.exe": peImg, "bin/b": elfImg, "vendor/x/c.exe": peImg, "test/d.exe": peImg})
	rep := validate(t, policyFor(t), Options{Exclude: []string{"vendor/**"}, Include: []string{"**/*.exe"}}, dir)
	judged, _ := paths(rep)
	if want := []string{"bin/a.exe", "test/d.exe"}; !slices.Equal(judged, want) {
		t.Errorf("judged %v, want %v", judged, want)
	}
	if rep.Summary.Excluded != 2 { // vendor (pruned as a directory) and bin/b
		t.Errorf("excluded %d", rep.Summary.Excluded)
	}
	if _, err := NewValidator(policyFor(t), Options{Include: []string{"["}}); !errors.Is(err, ErrOptions) {
		t.Errorf("bad glob: %v", err)
	}
}

// TestFIFOIsSkippedWithoutHanging puts a named pipe with no writer in the
// tree: opening it would block forever.
func TestFIFOIsSkippedWithoutHanging(t *testing.T) {
	dir := tree(t, map[string][]byte{"a.exe": peImg})
	if err := mkfifo(filepath.Join(dir, "pipe")); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan *Report, 1)
	go func() { done <- validate(t, policyFor(t), Options{}, dir) }()
	select {
	case rep := <-done:
		if len(rep.Skipped) != 1 || rep.Skipped[0].Path != "pipe" || !strings.Contains(rep.Skipped[0].Reason, "named pipe") {
			t.Errorf("skipped %+v", rep.Skipped)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("validation hangs on a FIFO")
	}
	// A FIFO given directly as a file argument is refused, not opened.
	v, _ := NewValidator(policyFor(t), Options{})
	if _, err := v.Validate(context.Background(), filepath.Join(dir, "pipe")); !errors.Is(err, ErrRoot) {
		t.Errorf("FIFO root: %v", err)
	}
}

// TestOpenRefusesNonRegular checks the guard against a file swapped for a
// FIFO between discovery and opening.
func TestOpenRefusesNonRegular(t *testing.T) {
	p := filepath.Join(t.TempDir(), "pipe")
	if err := mkfifo(p); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	in := inspect(context.Background(), p, make([]byte, 8192), &inspectConfig{needs: AllFacts})
	var ue *UnreadableError
	if !errors.As(in.Err, &ue) || !strings.Contains(in.Err.Error(), "not a regular file") {
		t.Errorf("err = %v", in.Err)
	}
}

func TestSymlinks(t *testing.T) {
	outside := tree(t, map[string][]byte{"evil.exe": pe32})
	dir := tree(t, map[string][]byte{"bin/a.exe": peImg, "lib/b": elfImg})
	links := map[string]string{
		"bin/link.exe": "a.exe",                            // to a file inside
		"bin/loop":     "..",                               // a loop
		"bin/libdir":   "../lib",                           // to a directory inside
		"bin/out.exe":  filepath.Join(outside, "evil.exe"), // out of the roots
		"bin/dangling": "nowhere",                          // to nothing
	}
	for l, target := range links {
		if err := os.Symlink(target, filepath.Join(dir, filepath.FromSlash(l))); err != nil {
			t.Skipf("symlink: %v", err)
		}
	}
	// Not followed by default: links are skipped, but the one out of the
	// roots is blocked (a packager following links would ship it unjudged).
	rep := validate(t, policyFor(t), Options{}, dir)
	judged, skipped := paths(rep)
	if want := []string{"bin/a.exe", "bin/out.exe", "lib/b"}; !slices.Equal(judged, want) {
		t.Errorf("default: judged %v", judged)
	}
	if len(skipped) != len(links)-1 {
		t.Errorf("default: skipped %v", skipped)
	}
	for _, r := range rep.Results {
		if r.Path == "bin/out.exe" && !strings.Contains(r.Decision.Reason, "outside the validated paths") {
			t.Errorf("default: out-of-tree link: %s", r.Decision.Reason)
		}
	}

	// Followed: inside links are judged, the loop ends, the outside link is
	// blocked (it cannot be judged), the dangling one is skipped.
	done := make(chan *Report, 1)
	go func() { done <- validate(t, policyFor(t), Options{FollowSymlinks: true}, dir) }()
	select {
	case rep = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("symlink loop: validation does not end")
	}
	judged, skipped = paths(rep)
	want := []string{"bin/a.exe", "bin/libdir/b", "bin/link.exe", "bin/out.exe", "lib/b"}
	if !slices.Equal(judged, want) {
		t.Errorf("follow: judged %v, want %v", judged, want)
	}
	if !slices.Equal(skipped, []string{"bin/dangling"}) {
		t.Errorf("follow: skipped %v", skipped)
	}
	for _, r := range rep.Results {
		if r.Path == "bin/out.exe" && (r.Decision.Verdict != cipolicy.Blocked || !strings.Contains(r.Decision.Reason, "outside the validated paths")) {
			t.Errorf("outside link: %+v", r.Decision)
		}
	}
}

// TestSignLeftoversAreBlocked: a temporary file or backup a killed csv sign
// left is blocked, even when its content is an allowed binary; names that
// only look alike are judged as usual.
func TestSignLeftoversAreBlocked(t *testing.T) {
	dir := tree(t, map[string][]byte{
		"ok.exe":                          peImg,
		".ok.exe.csv-sign-0123456789ab":   peImg,
		"sub/.tool.csv-sign-a1b2c3d4e5f6": elfImg,
		".ok.exe.csv-sign-notrandom":      peImg,
		"ok.exe.csv-sign-0123456789ab":    peImg,
	})
	set := policyFor(t,
		fmt.Sprintf("{id: pe, action: allow, authenticode_sha256: %s}", authHex(t, peImg)),
		fmt.Sprintf("{id: elf, action: allow, sha256: %s}", sha(elfImg)))
	rep := validate(t, set, Options{}, dir)
	blocked := map[string]bool{".ok.exe.csv-sign-0123456789ab": true, "sub/.tool.csv-sign-a1b2c3d4e5f6": true}
	if len(rep.Results) != 5 {
		t.Fatalf("%d results, want 5", len(rep.Results))
	}
	for _, r := range rep.Results {
		if blocked[r.Path] {
			if r.Decision.Allowed() || r.Decision.Kind != cipolicy.KindMalformed || !strings.Contains(r.Decision.Reason, "left by a csv sign") {
				t.Errorf("%s: %+v, want blocked as a leftover", r.Path, r.Decision)
			}
		} else if !r.Decision.Allowed() {
			t.Errorf("%s: %+v, want allowed", r.Path, r.Decision)
		}
	}
}

func TestUnreadableIsBlocked(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("running as root: permissions do not stop reads")
	}
	dir := tree(t, map[string][]byte{"a.exe": peImg, "sub/b.exe": peImg})
	os.Chmod(filepath.Join(dir, "a.exe"), 0)
	os.Chmod(filepath.Join(dir, "sub"), 0)
	t.Cleanup(func() { os.Chmod(filepath.Join(dir, "sub"), 0o755) })
	rep := validate(t, policyFor(t), Options{}, dir)
	if len(rep.Results) != 2 {
		t.Fatalf("results %+v", rep.Results)
	}
	for _, r := range rep.Results {
		if r.Decision.Kind != cipolicy.KindMalformed || !strings.Contains(r.Decision.Reason, "permission denied") {
			t.Errorf("%s: %+v", r.Path, r.Decision)
		}
	}
}

// TestDeterministicWhateverTheJobs checks that results come out in
// discovery order with any number of workers.
func TestDeterministicWhateverTheJobs(t *testing.T) {
	files := map[string][]byte{}
	for i := range 60 {
		img := testbin.PE(testbin.PEOptions{Overlay: make([]byte, (i*7919)%5000)})
		if i%3 == 0 {
			img = testbin.ELF(testbin.ELFOptions{Extra: make([]byte, i)})
		}
		files[fmt.Sprintf("d%d/f%02d", i%4, i)] = img
	}
	dir := tree(t, files)
	var first []string
	for _, jobs := range []int{1, 2, 7, 32} {
		rep := validate(t, policyFor(t), Options{Jobs: jobs, AllDigests: true}, dir)
		var got []string
		for _, r := range rep.Results {
			got = append(got, r.Path+":"+hex.EncodeToString(r.Digests.Get(cipolicy.SHA256)))
		}
		if first == nil {
			first = got
			if !slices.IsSorted(got) {
				t.Errorf("not in lexical order: %v", got)
			}
		} else if !slices.Equal(got, first) {
			t.Errorf("jobs=%d: results differ", jobs)
		}
	}
}

// TestMemoryDoesNotGrowWithFileSize validates a 256 MiB (sparse) PE and
// checks that the run allocates a small fraction of that.
func TestMemoryDoesNotGrowWithFileSize(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 256 MiB")
	}
	p := filepath.Join(t.TempDir(), "big.exe")
	if err := os.WriteFile(p, peImg, 0o644); err != nil {
		t.Fatal(err)
	}
	const size = 256 << 20
	if err := os.Truncate(p, size); err != nil { // zero overlay
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rep := validate(t, policyFor(t), Options{AllDigests: true, Jobs: 2}, p)
	runtime.ReadMemStats(&after)
	if rep.Results[0].Size != size || rep.Results[0].Err != nil {
		t.Fatalf("result %+v", rep.Results[0])
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("validating a %d MiB file allocated %d KiB", size>>20, alloc>>10)
	}
}

func TestCancellation(t *testing.T) {
	files := map[string][]byte{}
	for i := range 50 {
		files[fmt.Sprintf("f%02d.exe", i)] = peImg
	}
	dir := tree(t, files)
	ctx, cancel := context.WithCancel(context.Background())
	v, _ := NewValidator(policyFor(t), Options{Jobs: 1, Progress: func(done, total int) {
		if done == 5 {
			cancel()
		}
	}})
	_, err := v.Validate(ctx, dir)
	var ie *InterruptedError
	// The walk runs beside the inspection: Total is the files found when
	// the run stopped, all of them once the walk has ended.
	if !errors.As(err, &ie) || !errors.Is(err, context.Canceled) || ie.Done >= 50 || ie.Total > 50 || ie.Done > ie.Total || !ie.Walking && ie.Total != 50 {
		t.Errorf("err = %v (%+v)", err, ie)
	}
}

// TestPanicBecomesFinding checks the recover around a file's inspection.
func TestPanicBecomesFinding(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.exe")
	os.WriteFile(p, peImg, 0o644)
	in := inspect(context.Background(), p, make([]byte, 8192), &inspectConfig{needs: func(cipolicy.Format) cipolicy.Needs { panic("boom") }})
	var mb *MalformedBinaryError
	if !errors.As(in.Err, &mb) || !strings.Contains(mb.Reason, "boom") || mb.Format != FormatPE {
		t.Errorf("err = %v", in.Err)
	}
}

// TestShardsPartitionTheBuild: the shards of a run judge every file exactly
// once between them, with the verdicts of a single run.
func TestShardsPartitionTheBuild(t *testing.T) {
	files := map[string][]byte{"notes.txt": []byte("text")}
	for i := range 40 {
		files[fmt.Sprintf("d%d/f%02d.exe", i%5, i)] = testbin.PE(testbin.PEOptions{Overlay: []byte{byte(i)}})
	}
	dir := tree(t, files)
	set := policyFor(t, fmt.Sprintf("{id: one, action: allow, authenticode_sha256: %s}", authHex(t, files["d0/f00.exe"])))
	whole := map[string]string{}
	for _, r := range validate(t, set, Options{}, dir).Results {
		whole[r.Path] = string(r.Decision.Verdict)
	}
	seen := map[string]string{}
	skipped := 0
	for i := 1; i <= 4; i++ {
		rep := validate(t, set, Options{Shard: &Shard{Index: i, Count: 4}}, dir)
		if rep.Shard == nil || rep.Shard.Index != i {
			t.Fatalf("shard %d: report says %v", i, rep.Shard)
		}
		if len(rep.Results) == 0 {
			t.Errorf("shard %d/4 is empty: the hash does not spread files", i)
		}
		for _, r := range rep.Results {
			if _, dup := seen[r.Path]; dup {
				t.Errorf("%s judged by two shards", r.Path)
			}
			seen[r.Path] = string(r.Decision.Verdict)
		}
		skipped += len(rep.Skipped)
	}
	if !reflect.DeepEqual(seen, whole) || skipped != 1 {
		t.Errorf("shards judged %d files (%d skipped), a single run %d", len(seen), skipped, len(whole))
	}
	for _, bad := range []string{"0/4", "5/4", "1/0", "a/b", "1/2/3", "01/4"} {
		if _, err := ParseShard(bad); !errors.Is(err, ErrOptions) {
			t.Errorf("ParseShard(%q) = %v", bad, err)
		}
	}
}

// TestFarPEHeaderIsBlocked: a PE whose NT headers lie past the cap on
// e_lfanew is blocked as malformed, not skipped as "not a PE".
func TestFarPEHeaderIsBlocked(t *testing.T) {
	p := filepath.Join(t.TempDir(), "far.exe")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	const lfanew = 64<<20 + 8
	dos := make([]byte, 64)
	copy(dos, "MZ")
	binary.LittleEndian.PutUint32(dos[0x3c:], lfanew)
	f.Write(dos)
	f.WriteAt([]byte("PE\x00\x00"), lfanew) // sparse in between
	f.WriteAt(make([]byte, 256), lfanew+4)
	f.Close()
	rep := validate(t, policyFor(t, "{id: all, action: allow, all: true}"), Options{}, p)
	if len(rep.Results) != 1 || rep.Results[0].Decision.Kind != cipolicy.KindMalformed || !strings.Contains(rep.Results[0].Decision.Reason, "e_lfanew") {
		t.Fatalf("results %+v, skipped %+v", rep.Results, rep.Skipped)
	}
}

// TestInspectMZTextHasNoDigest: csv inspect hashes a file of no format, but
// not one that starts as a PE does without being one ("MZ" text), as it
// always has.
func TestInspectMZTextHasNoDigest(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string]string{"mz.txt": "MZ but not a PE\n", "plain.txt": "hello\n"} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(data), 0o644)
		in := InspectFile(context.Background(), p, nil, InspectOptions{})
		if in.Err != nil || in.Format != FormatOther {
			t.Fatalf("%s: format %s, err %v", name, in.Format, in.Err)
		}
		if got, want := in.Digests.Get(cipolicy.SHA256) != nil, name == "plain.txt"; got != want {
			t.Errorf("%s: has a SHA256: %v, want %v", name, got, want)
		}
	}
}

// recordSink records what ValidateTo passes it, in order.
type recordSink struct {
	calls []string
	err   error // returned by Result
	end   *Report
}

func (s *recordSink) Begin(rep *Report) error {
	s.calls = append(s.calls, fmt.Sprintf("begin %d results", len(rep.Results)))
	return nil
}

func (s *recordSink) Result(r *Result) error {
	s.calls = append(s.calls, "result "+r.Path+" "+r.Decision.Reason)
	return s.err
}

func (s *recordSink) Skipped(f *SkippedFile) error {
	s.calls = append(s.calls, "skipped "+f.Path)
	return nil
}

func (s *recordSink) End(rep *Report) error {
	s.calls = append(s.calls, "end")
	s.end = rep
	return nil
}

// TestValidateToStreamsInOrder: a sink gets every judged and skipped file
// in discovery order, as Validate reports them, then the summary; a sink's
// error stops the run, without an End.
func TestValidateToStreamsInOrder(t *testing.T) {
	dir := tree(t, map[string][]byte{
		"b/plugin.node": peImg, "a/tool": elfImg, "a/readme.txt": []byte("text"), "c/big.dll": append(slices.Clone(pe32), make([]byte, 1<<20)...),
	})
	set := policyFor(t)
	rep := validate(t, set, Options{Jobs: 2}, dir)
	want := []string{"begin 0 results", "skipped a/readme.txt"}
	for _, r := range rep.Results {
		want = append(want, "result "+r.Path+" "+r.Decision.Reason)
	}
	want = append(want, "end")
	v, _ := NewValidator(set, Options{Jobs: 2})
	var s recordSink
	if err := v.ValidateTo(t.Context(), &s, dir); err != nil {
		t.Fatal(err)
	}
	// The walk's order: "a/readme.txt" sorts first.
	if !slices.Equal(s.calls, want) {
		t.Errorf("calls\n%q\nwant\n%q", s.calls, want)
	}
	if s.end == nil || s.end.Summary != rep.Summary || len(s.end.Results) != 0 {
		t.Errorf("end %+v, want summary %+v", s.end, rep.Summary)
	}
	errSink := errors.New("sink failed")
	s = recordSink{err: errSink}
	if err := v.ValidateTo(t.Context(), &s, dir); !errors.Is(err, errSink) || slices.Contains(s.calls, "end") {
		t.Errorf("err %v, calls %q", err, s.calls)
	}
}

// holdInspection replaces inspectFile for the test: hold is called, in the
// worker, before each file's inspection, with the file's base name.
func holdInspection(t *testing.T, hold func(name string)) {
	t.Helper()
	t.Cleanup(func() { inspectFile = inspect })
	inspectFile = func(ctx context.Context, path string, buf []byte, cfg *inspectConfig) *Inspection {
		hold(filepath.Base(path))
		return inspect(ctx, path, buf, cfg)
	}
}

// numberedPEs writes n distinct PE files f00.exe, f01.exe... in a new
// directory.
func numberedPEs(t *testing.T, n int) string {
	t.Helper()
	files := map[string][]byte{}
	for i := range n {
		files[fmt.Sprintf("f%02d.exe", i)] = testbin.PE(testbin.PEOptions{Overlay: []byte{byte(i)}})
	}
	return tree(t, files)
}

// funcSink is a recordSink that calls onResult with each result first.
type funcSink struct {
	recordSink
	onResult func(r *Result)
}

func (s *funcSink) Result(r *Result) error {
	s.onResult(r)
	return s.recordSink.Result(r)
}

// TestResultsStreamBeforeTheLastInspection: while the last file's
// inspection is held back, every other file is judged and reaches the sink,
// whose result for the one before it releases the last.
func TestResultsStreamBeforeTheLastInspection(t *testing.T) {
	dir := numberedPEs(t, 20)
	release := make(chan struct{})
	var released atomic.Bool
	holdInspection(t, func(name string) {
		if name != "f19.exe" {
			return
		}
		select {
		case <-release:
			released.Store(true)
		case <-time.After(10 * time.Second): // not streamed: let the run end
		}
	})
	v, _ := NewValidator(policyFor(t), Options{Jobs: 2})
	s := &funcSink{onResult: func(r *Result) {
		if r.Path == "f18.exe" {
			close(release)
		}
	}}
	if err := v.ValidateTo(t.Context(), s, dir); err != nil {
		t.Fatal(err)
	}
	if !released.Load() {
		t.Error("the first results reached the sink only once the last file was inspected")
	}
	if len(s.calls) != 22 || !strings.HasPrefix(s.calls[20], "result f19.exe ") {
		t.Errorf("calls %q", s.calls)
	}
}

// TestReorderWindowBoundsTheWorkers: while the first file's inspection is
// held back, the workers start no more than the window's inspections, and
// at each result no more than the window are under way or waiting; an
// interrupted run's sink gets no End.
func TestReorderWindowBoundsTheWorkers(t *testing.T) {
	defer func(w int) { windowPerJob = w }(windowPerJob)
	windowPerJob = 3
	const jobs, window = 2, 6
	dir := numberedPEs(t, 40)
	release := make(chan struct{})
	var started atomic.Int64
	holdInspection(t, func(name string) {
		started.Add(1)
		if name == "f00.exe" {
			<-release
		}
	})
	go func() {
		defer close(release)
		deadline := time.Now().Add(10 * time.Second)
		for started.Load() < window && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond) // would a worker go further?
		if n := started.Load(); n != window {
			t.Errorf("%d inspections started while the first was held, want the window's %d", n, window)
		}
	}()
	v, _ := NewValidator(policyFor(t), Options{Jobs: jobs})
	emitted := 0
	s := &funcSink{onResult: func(r *Result) {
		if n := int(started.Load()); n > emitted+window {
			t.Errorf("at result %d (%s), %d inspections started: more than the window (%d) ahead", emitted, r.Path, n, window)
		}
		emitted++
	}}
	if err := v.ValidateTo(t.Context(), s, dir); err != nil {
		t.Fatal(err)
	}
	if emitted != 40 || s.end == nil {
		t.Fatalf("%d results, end %v", emitted, s.end != nil)
	}

	// Cancelled after a few results: an InterruptedError, and no End.
	holdInspection(t, func(string) {})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	s = &funcSink{onResult: func(r *Result) {
		if r.Path == "f04.exe" {
			cancel()
		}
	}}
	var ie *InterruptedError
	err := v.ValidateTo(ctx, s, dir)
	if !errors.As(err, &ie) || !errors.Is(err, context.Canceled) || ie.Total > 40 || !ie.Walking && ie.Total != 40 || ie.Done > 4+window+jobs {
		t.Errorf("err = %v (%+v)", err, ie)
	}
	if s.end != nil || slices.Contains(s.calls, "end") {
		t.Errorf("an interrupted run's sink got End: %q", s.calls)
	}
}

// TestResultsStreamBeforeTheWalkEnds: the walk does not list the tree
// before inspecting it. While the run's listing of the second directory is
// held back until the first directory's files have reached the sink, the run
// completes; were the tree listed first, no result would reach the sink
// and the hold would time out.
func TestResultsStreamBeforeTheWalkEnds(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"a", "z"} {
		os.Mkdir(filepath.Join(dir, d), 0o755)
		for i := range 3 {
			os.WriteFile(filepath.Join(dir, d, fmt.Sprintf("f%d.exe", i)), testbin.PE(testbin.PEOptions{Overlay: []byte(d)}), 0o644)
		}
	}
	firstDone := make(chan struct{})
	var once sync.Once
	defer func() { readDir = os.ReadDir }()
	listed := 0
	readDir = func(name string) ([]os.DirEntry, error) {
		// The first listing of z is the walk that looks for catalogs
		// (csv/catalogs.go), before judging; the second is the run's.
		if filepath.Base(name) == "z" {
			if listed++; listed == 1 {
				return os.ReadDir(name)
			}
			select {
			case <-firstDone:
			case <-time.After(10 * time.Second):
				t.Error("the second directory was listed before any result reached the sink: the walk does not stream")
			}
		}
		return os.ReadDir(name)
	}
	v, _ := NewValidator(policyFor(t), Options{Jobs: 2})
	s := &funcSink{onResult: func(r *Result) {
		if r.Path == "a/f2.exe" {
			once.Do(func() { close(firstDone) })
		}
	}}
	if err := v.ValidateTo(t.Context(), s, dir); err != nil {
		t.Fatal(err)
	}
	if len(s.calls) != 8 || s.end == nil || s.end.Walked.Entries != 6 {
		t.Errorf("calls %q, walked %+v", s.calls, s.end)
	}
}
