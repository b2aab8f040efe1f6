package csv

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
)

// linkTree is a build whose bin/ directory reaches testdata/ through
// symbolic links: a file link, a link to that link, a directory link, and a
// link to a file inside bin/. zz/tools links testdata/ again, after it in
// the walk.
func linkTree(t *testing.T) string {
	t.Helper()
	dir := tree(t, map[string][]byte{
		"bin/a.exe":             peImg,
		"testdata/unsigned.exe": pe32,
		"zz/keep.txt":           []byte("text"),
	})
	for l, target := range map[string]string{
		"bin/helper.exe": "../testdata/unsigned.exe",
		"bin/chain.exe":  "helper.exe",
		"bin/tools":      "../testdata",
		"bin/same.exe":   "a.exe",
		"zz/tools":       "../testdata",
	} {
		if err := os.Symlink(target, filepath.Join(dir, filepath.FromSlash(l))); err != nil {
			t.Skipf("symlink: %v", err)
		}
	}
	return dir
}

// TestLinksCannotEscapeFilters: a symbolic link whose target is not judged
// in this run at a path the policy treats alike (left out by --include or
// --exclude, or judged under path-scoped rules that differ) is judged
// itself, under its own path, with its target's bytes: a packager that
// follows links (tar -h, zip) ships those bytes under the link's name.
// Links whose targets are judged alike stay skipped, as before.
func TestLinksCannotEscapeFilters(t *testing.T) {
	dir := linkTree(t)
	allowPE := fmt.Sprintf("{id: ok, action: allow, authenticode_sha256: %s}", authHex(t, peImg))
	u := authHex(t, pe32)
	through := []string{"bin/chain.exe", "bin/helper.exe", "bin/tools/unsigned.exe"}
	for _, tc := range []struct {
		name        string
		rules       []string
		opts        Options
		judged      []string // besides these, nothing is judged
		blocked     []string
		skippedLink []string
	}{
		{
			name:        "no filters: links to judged files stay skipped",
			rules:       []string{allowPE},
			judged:      []string{"bin/a.exe", "testdata/unsigned.exe"},
			blocked:     []string{"testdata/unsigned.exe"},
			skippedLink: []string{"bin/chain.exe", "bin/helper.exe", "bin/same.exe", "bin/tools", "zz/tools"},
		},
		{
			name:        "include",
			rules:       []string{allowPE},
			opts:        Options{Include: []string{"bin/**"}},
			judged:      append([]string{"bin/a.exe"}, through...),
			blocked:     through,
			skippedLink: []string{"bin/same.exe", "zz/tools"}, // nothing under zz/tools is included
		},
		{
			name:        "exclude",
			rules:       []string{allowPE},
			opts:        Options{Exclude: []string{"testdata/**"}},
			judged:      append([]string{"bin/a.exe"}, append(slices.Clone(through), "zz/tools/unsigned.exe")...),
			blocked:     append(slices.Clone(through), "zz/tools/unsigned.exe"),
			skippedLink: []string{"bin/same.exe"},
		},
		{
			name:        "allow rule scoped to the target's path",
			rules:       []string{allowPE, fmt.Sprintf("{id: td, action: allow, authenticode_sha256: %s, paths: ['testdata/**']}", u)},
			judged:      append([]string{"bin/a.exe"}, append(slices.Clone(through), "testdata/unsigned.exe", "zz/tools/unsigned.exe")...),
			blocked:     append(slices.Clone(through), "zz/tools/unsigned.exe"),
			skippedLink: []string{"bin/same.exe"},
		},
		{
			name:        "deny rule scoped to the link's path",
			rules:       []string{"{id: all, action: allow, all: true}", fmt.Sprintf("{id: no, action: deny, authenticode_sha256: %s, paths: ['bin/**']}", u)},
			judged:      append([]string{"bin/a.exe"}, append(slices.Clone(through), "testdata/unsigned.exe")...),
			blocked:     through,
			skippedLink: []string{"bin/same.exe", "zz/tools"},
		},
		{
			name:    "followed: a second way into a directory walked already",
			rules:   []string{allowPE},
			opts:    Options{FollowSymlinks: true, Include: []string{"zz/**"}},
			judged:  []string{"zz/tools/unsigned.exe"},
			blocked: []string{"zz/tools/unsigned.exe"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set := policyFor(t, tc.rules...)
			rep := validate(t, set, tc.opts, dir)
			judged, _ := paths(rep)
			slices.Sort(judged)
			want := slices.Sorted(slices.Values(tc.judged))
			if !slices.Equal(judged, want) {
				t.Errorf("judged %v, want %v", judged, want)
			}
			for _, r := range rep.Results {
				if slices.Contains(tc.blocked, r.Path) == r.Decision.Allowed() {
					t.Errorf("%s: %s (%s)", r.Path, r.Decision.Verdict, r.Decision.Reason)
				}
			}
			var links []string
			for _, s := range rep.Skipped {
				if s.Reason == reasonSymlink {
					links = append(links, s.Path)
				}
			}
			if tc.skippedLink != nil && !slices.Equal(links, tc.skippedLink) {
				t.Errorf("links skipped %v, want %v", links, tc.skippedLink)
			}
			if len(tc.blocked) > 0 && !rep.Failed() {
				t.Error("the run passes")
			}

			// The shards of the run judge the same files between them.
			var union []string
			for i := 1; i <= 3; i++ {
				o := tc.opts
				o.Shard = &Shard{Index: i, Count: 3}
				j, _ := paths(validate(t, set, o, dir))
				union = append(union, j...)
			}
			slices.Sort(union)
			if !slices.Equal(union, want) {
				t.Errorf("shards judged %v, want %v", union, want)
			}
		})
	}
}

// TestLinksMatchTarH uses GNU tar as the oracle of what a packager ships:
// every regular file tar -h writes under bin/ is judged by validate
// --include 'bin/**', or is a skipped link to a file judged with the same
// bytes (same path scopes: none here).
func TestLinksMatchTarH(t *testing.T) {
	tar := testenv.Tool(t, "tar")
	dir := linkTree(t)
	rep := validate(t, policyFor(t), Options{Include: []string{"bin/**"}}, dir)
	covered := map[string]bool{}
	for _, r := range rep.Results {
		covered[r.Path] = true
	}
	for _, s := range rep.Skipped {
		target, err := filepath.EvalSymlinks(filepath.Join(dir, s.Path))
		if err != nil {
			continue
		}
		realDir, _ := filepath.EvalSymlinks(dir)
		rel, _ := filepath.Rel(realDir, target)
		if covered[filepath.ToSlash(rel)] {
			covered[s.Path] = true
		}
	}
	out, err := exec.Command(tar, "-ch", "--hard-dereference", "-C", dir, "-f", "-", "bin").Output()
	if err != nil {
		t.Fatalf("tar -ch: %v", err)
	}
	list := exec.Command(tar, "-tv", "-f", "-")
	list.Stdin = bytes.NewReader(out)
	listing, err := list.Output()
	if err != nil {
		t.Fatalf("tar -tv: %v", err)
	}
	members := 0
	sc := bufio.NewScanner(bytes.NewReader(listing))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || !strings.HasPrefix(f[0], "-") {
			continue // directories (tar -h writes no links)
		}
		name := f[len(f)-1]
		members++
		if !covered[name] {
			t.Errorf("tar -h ships %s, which validate --include 'bin/**' did not judge", name)
		}
	}
	if members < 5 {
		t.Errorf("tar -h shipped %d files:\n%s", members, listing)
	}
	// The files reached only through links are blocked: the policy allows
	// nothing.
	if rep.Summary.Blocked < 4 || !rep.Failed() {
		t.Errorf("summary %+v", rep.Summary)
	}
}

// TestLinkLoopsAndFanOutEnd: links that lead back up the tree end, and
// links that fan out (each directory linking the next twice: 2^n paths)
// stop at the cap, which blocks the link with the reason.
func TestLinkLoopsAndFanOutEnd(t *testing.T) {
	dir := linkTree(t)
	if err := os.Symlink("..", filepath.Join(dir, "bin", "loop")); err != nil {
		t.Skipf("symlink: %v", err)
	}
	rep := validate(t, policyFor(t), Options{Exclude: []string{"testdata/**"}}, dir)
	judged, _ := paths(rep)
	// Through bin/loop, the root again: testdata is not excluded there.
	if !slices.Contains(judged, "bin/loop/testdata/unsigned.exe") || slices.Contains(judged, "bin/loop/bin/a.exe") {
		t.Errorf("judged %v", judged)
	}

	fan := t.TempDir()
	const depth = 16
	for i := range depth {
		d := filepath.Join(fan, fmt.Sprintf("d%02d", i))
		os.MkdirAll(d, 0o755)
		for _, l := range []string{"a", "b"} {
			os.Symlink(fmt.Sprintf("../d%02d", i+1), filepath.Join(d, l))
		}
	}
	os.MkdirAll(filepath.Join(fan, fmt.Sprintf("d%02d", depth)), 0o755)
	os.WriteFile(filepath.Join(fan, fmt.Sprintf("d%02d", depth), "x.exe"), pe32, 0o644)
	old := maxLinked
	maxLinked = 5000
	t.Cleanup(func() { maxLinked = old })
	start := time.Now()
	rep = validate(t, policyFor(t), Options{Exclude: []string{"nothing"}}, fan)
	if time.Since(start) > 20*time.Second {
		t.Errorf("took %v", time.Since(start))
	}
	capped := 0
	for _, r := range rep.Results {
		if errors.Is(r.Err, errTooManyLinked) {
			capped++
			if r.Decision.Allowed() || !strings.Contains(r.Decision.Reason, "limits.MaxLinkedEntries") {
				t.Errorf("%s: %+v", r.Path, r.Decision)
			}
		}
	}
	if capped == 0 || !rep.Failed() {
		t.Errorf("no link blocked at the cap: %d results, summary %+v", len(rep.Results), rep.Summary)
	}
}

// TestLinkSettlingIsLinear: with --follow-symlinks, a file is judged at
// one path per link followed to it, and deciding each link to a directory
// walked already compared the path of every file under it with every path
// its target is judged at: 20,000 links to one file and 20,000 files
// reached through links to its directory took 26 s (a tree of 520 KB), and
// a million of each, which the cap on linked entries admits, hours. Now a
// path's class under the policy's globs is computed once, and the glob
// matches grow with the paths walked, not with their product.
func TestLinkSettlingIsLinear(t *testing.T) {
	const links, inDir, dirLinks = 2000, 50, 20
	dir := tree(t, map[string][]byte{"bin/t/x.exe": pe32})
	for i := range links {
		if err := os.Symlink("t/x.exe", filepath.Join(dir, "bin", fmt.Sprintf("l%05d", i))); err != nil {
			t.Skipf("symlink: %v", err)
		}
	}
	for i := range inDir {
		os.Symlink("x.exe", filepath.Join(dir, "bin", "t", fmt.Sprintf("m%03d", i)))
	}
	os.Mkdir(filepath.Join(dir, "z"), 0o755)
	for i := range dirLinks {
		os.Symlink("../bin/t", filepath.Join(dir, "z", fmt.Sprintf("d%02d", i)))
	}
	var matches atomic.Int64
	old := globMatch
	globMatch = func(p, s string) (bool, error) { matches.Add(1); return old(p, s) }
	t.Cleanup(func() { globMatch = old })

	// The policy allows what lies under bin/: the same file reached
	// through z/ is judged there, and blocked.
	set := policyFor(t, "{id: bin, action: allow, all: true, paths: ['bin/**']}")
	rep := validate(t, set, Options{FollowSymlinks: true}, dir)
	walked := links + (inDir + 1) + dirLinks*(inDir+1)
	if rep.Summary.Files != walked || rep.Summary.Blocked != dirLinks*(inDir+1) {
		t.Errorf("summary %+v, want %d files, %d blocked", rep.Summary, walked, dirLinks*(inDir+1))
	}
	if n := matches.Load(); n > int64(4*walked) {
		t.Errorf("%d glob matches for %d paths", n, walked)
	}
}

// TestSignThroughLinksLeftOutByFilters: what validation judges through a
// link, signing signs through it, so that what ships under the link's name
// is signed: in place the target is signed once (the links stay links),
// into --out each path gets the signed bytes. Validation's digests match
// what signing reads (no ErrChanged), and the result validates.
func TestSignThroughLinksLeftOutByFilters(t *testing.T) {
	s := newSigner(t)
	sel := Options{Include: []string{"bin/**"}}
	set := policyFor(t,
		fmt.Sprintf("{id: a, action: allow, authenticode_sha256: %s}", authHex(t, peImg)),
		fmt.Sprintf("{id: u, action: allow, authenticode_sha256: %s}", authHex(t, pe32)))
	certs := []*signing.Certificate{sigCert(t, s.leaf.Cert), sigCert(t, s.ca.Intermediate.Cert)}
	for _, out := range []bool{false, true} {
		t.Run(fmt.Sprintf("out=%v", out), func(t *testing.T) {
			dir := linkTree(t)
			o := sel
			o.SignCheck = true
			rep := validate(t, set, o, dir)
			if rep.Failed() {
				t.Fatalf("validation fails: %+v", rep.Summary)
			}
			opts := s.opts()
			opts.Include, opts.Expect = sel.Include, rep.Digests()
			target := dir
			if out {
				opts.Out = t.TempDir()
				target = opts.Out
			}
			if _, err := Sign(t.Context(), opts, dir); err != nil {
				t.Fatal(err)
			}
			if !out {
				if fi, err := os.Lstat(filepath.Join(dir, "bin/helper.exe")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
					t.Errorf("bin/helper.exe is no longer a link: %v", err)
				}
				in := InspectFile(t.Context(), filepath.Join(dir, "testdata/unsigned.exe"), nil, InspectOptions{Certificates: certs})
				if len(in.Signatures) != 1 || !in.Signatures[0].Verified() {
					t.Errorf("the target is not signed once: %d signatures", len(in.Signatures))
				}
			}
			vrep := validate(t, s.pcaPolicy(t), Options{Include: sel.Include, Certificates: certs}, target)
			judged, _ := paths(vrep)
			if vrep.Failed() || !slices.Contains(judged, "bin/helper.exe") || !slices.Contains(judged, "bin/tools/unsigned.exe") {
				for _, r := range vrep.Results {
					t.Logf("%s: %s", r.Path, r.Decision.Reason)
				}
				t.Errorf("after signing: judged %v, summary %+v", judged, vrep.Summary)
			}
		})
	}
}
