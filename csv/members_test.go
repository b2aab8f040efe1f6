package csv

import (
	stdtar "archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/container"
	binpe "github.com/codesignval/csv/internal/binfmt/pe"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/signing"
)

// testContainer is a container kind for the pipeline's tests, independent
// of the real readers: "CSVTESTC\n", then per member a line
// "name\tsize\tproblem\n" and size bytes; a line "BAD\n" makes Walk fail
// there (a container csv cannot read past).
type testContainer struct{}

const testMagic = "CSVTESTC\n"

func (testContainer) Kind() container.Kind { return "testc" }

func (testContainer) Sniff(head []byte, _ string) bool {
	return bytes.HasPrefix(head, []byte(testMagic))
}

func (testContainer) Walk(ctx context.Context, src io.ReaderAt, size int64, _ string, lim *container.Limits, yield func(*container.Member, io.Reader) error) error {
	br := bufio.NewReader(io.NewSectionReader(src, 0, size))
	if _, err := br.Discard(len(testMagic)); err != nil {
		return err
	}
	for {
		line, err := br.ReadString('\n')
		if err == io.EOF && line == "" {
			return nil
		}
		if err != nil || line == "BAD\n" {
			return &signing.MalformedError{Format: "testc", Offset: -1, Reason: "bad member header"}
		}
		f := strings.SplitN(strings.TrimSuffix(line, "\n"), "\t", 3)
		n, _ := strconv.ParseInt(f[1], 10, 64)
		m := &container.Member{Name: f[0], Size: n}
		if f[2] != "" {
			m.Problem = fmt.Errorf("%w: %s", container.ErrMember, f[2])
			if t, ok := strings.CutPrefix(f[2], "symlink:"); ok {
				m.Type, m.Link = container.Symlink, t
			} else if t, ok := strings.CutPrefix(f[2], "hardlink:"); ok {
				m.Type, m.Link = container.Hardlink, t
			}
		}
		var r io.Reader
		if m.Problem == nil {
			r = &container.Meter{R: io.LimitReader(br, n), Ctx: ctx, Lim: lim, Name: m.Name, Declared: n, Format: "testc"}
		}
		if err := yield(m, r); err != nil {
			return err
		}
		if r != nil {
			if _, err := io.Copy(io.Discard, r); err != nil {
				return err
			}
		} else if _, err := br.Discard(int(n)); err != nil {
			return err
		}
	}
}

func init() { container.Register(testContainer{}) }

type tcMember struct {
	name    string
	data    []byte
	problem string
}

func testArchive(members ...tcMember) []byte {
	b := []byte(testMagic)
	for _, m := range members {
		b = fmt.Appendf(b, "%s\t%d\t%s\n", m.name, len(m.data), m.problem)
		b = append(b, m.data...)
	}
	return b
}

// TestContainerMembersJudged: members are judged at "container!/name"
// paths, in the container's order at its place in the walk, nested
// containers depth first; members that cannot be judged are blocked; what
// follows a point the reader cannot read past is a finding on the
// container itself.
func TestContainerMembersJudged(t *testing.T) {
	good := testbin.PE(testbin.PEOptions{})
	bad := testbin.PE(testbin.PEOptions{Code: []byte{0x90, 0xc3}})
	elf := testbin.ELF(testbin.ELFOptions{})
	inner := testArchive(tcMember{"deep/x.exe", good, ""}, tcMember{"readme.txt", []byte("hi"), ""})
	outer := testArchive(
		tcMember{"bin/app.exe", good, ""},
		tcMember{"bin/tool.exe", bad, ""},
		tcMember{"lib/in.tc", inner, ""},
		tcMember{"enc.dll", nil, "encrypted"},
		tcMember{"lib/x.so", elf, ""},
	)
	dir := tree(t, map[string][]byte{
		"a.exe":      good,
		"dist/p.tc":  outer,
		"dist/q.tc":  append(testArchive(tcMember{"ok.exe", good, ""}), "BAD\n"...),
		"z/last.exe": good,
	})
	set := policyFor(t,
		"{id: good, action: allow, sha256: "+sha(good)+"}",
		"{id: elf, action: allow, sha256: "+sha(elf)+"}")
	rep := validate(t, set, Options{Jobs: 2}, dir)
	var got []string
	for _, r := range rep.Results {
		got = append(got, fmt.Sprintf("%s %s %s", r.Path, r.Decision.Verdict, r.Format))
	}
	want := []string{
		"a.exe allowed pe",
		"dist/p.tc!/bin/app.exe allowed pe",
		"dist/p.tc!/bin/tool.exe blocked pe",
		"dist/p.tc!/lib/in.tc!/deep/x.exe allowed pe",
		"dist/p.tc!/enc.dll blocked other",
		"dist/p.tc!/lib/x.so allowed elf",
		"dist/q.tc!/ok.exe allowed pe",
		"dist/q.tc blocked other",
		"z/last.exe allowed pe",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("results:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, r := range rep.Results {
		switch r.Path {
		case "dist/p.tc!/enc.dll":
			if !errors.Is(r.Err, container.ErrMember) || r.Decision.Kind != cipolicy.KindMalformed {
				t.Errorf("%s: err %v, kind %s", r.Path, r.Err, r.Decision.Kind)
			}
		case "dist/q.tc":
			if !errors.Is(r.Err, signing.ErrMalformed) {
				t.Errorf("%s: err %v", r.Path, r.Err)
			}
		}
	}
	var skipped []string
	for _, s := range rep.Skipped {
		skipped = append(skipped, s.Path)
	}
	wantSkipped := []string{"dist/p.tc", "dist/p.tc!/lib/in.tc", "dist/p.tc!/lib/in.tc!/readme.txt", "dist/q.tc"}
	if !slices.Equal(skipped, wantSkipped) {
		t.Errorf("skipped %q, want %q", skipped, wantSkipped)
	}
	if rep.Summary.Files != 9 || rep.Summary.Blocked != 3 {
		t.Errorf("summary %+v", rep.Summary)
	}
}

// TestContainerMemberTampered: one byte changed in a member blocks exactly
// that member.
func TestContainerMemberTampered(t *testing.T) {
	a := testbin.PE(testbin.PEOptions{})
	b := testbin.ELF(testbin.ELFOptions{})
	set := policyFor(t, "{id: a, action: allow, sha256: "+sha(a)+"}", "{id: b, action: allow, sha256: "+sha(b)+"}")
	b2 := slices.Clone(b)
	b2[len(b2)-1] ^= 1
	for _, tc := range []struct {
		b       []byte
		blocked []string
	}{{b, nil}, {b2, []string{"p.tc!/b"}}} {
		dir := tree(t, map[string][]byte{"p.tc": testArchive(tcMember{"a", a, ""}, tcMember{"b", tc.b, ""})})
		rep := validate(t, set, Options{}, dir)
		var blocked []string
		for _, r := range rep.Results {
			if !r.Decision.Allowed() {
				blocked = append(blocked, r.Path)
			}
		}
		if len(rep.Results) != 2 || !slices.Equal(blocked, tc.blocked) {
			t.Errorf("blocked %q of %d, want %q", blocked, len(rep.Results), tc.blocked)
		}
	}
}

// TestContainerIncludeExclude: --include and --exclude match member paths,
// and a container is opened though --include does not name it.
func TestContainerIncludeExclude(t *testing.T) {
	a := testbin.PE(testbin.PEOptions{})
	dir := tree(t, map[string][]byte{
		"p.tc":      testArchive(tcMember{"x.dll", a, ""}, tcMember{"skip/y.dll", a, ""}, tcMember{"z.exe", a, ""}),
		"other.dll": a,
	})
	rep := validate(t, policyFor(t), Options{Include: []string{"**/*.dll"}, Exclude: []string{"**/skip/**"}}, dir)
	judged, _ := paths(rep)
	if want := []string{"other.dll", "p.tc!/x.dll"}; !slices.Equal(judged, want) {
		t.Errorf("judged %q, want %q", judged, want)
	}
	if rep.Summary.Excluded != 2 { // skip/y.dll and z.exe (p.tc is opened, not counted)
		t.Errorf("excluded %d, want 2", rep.Summary.Excluded)
	}
}

// TestContainerFileRoot: a container given as the PATH reads
// "PATH!/member" in reports.
func TestContainerFileRoot(t *testing.T) {
	a := testbin.PE(testbin.PEOptions{})
	dir := tree(t, map[string][]byte{"p.tc": testArchive(tcMember{"lib/x.dll", a, ""})})
	root := dir + "/p.tc"
	rep := validate(t, policyFor(t), Options{}, root)
	if len(rep.Results) != 1 || rep.Results[0].DisplayPath() != root+"!/lib/x.dll" {
		t.Fatalf("results %+v", rep.Results)
	}
}

// TestContainerCaps: depth, member size and the expanded total are capped,
// and the finding names the cap.
func TestContainerCaps(t *testing.T) {
	a := testbin.PE(testbin.PEOptions{})
	nest := testArchive(tcMember{"x.exe", a, ""})
	for range 3 {
		nest = testArchive(tcMember{"n.tc", nest, ""})
	}
	for _, tc := range []struct {
		name string
		lim  func(*container.Limits)
		cap  string
	}{
		{"depth", func(l *container.Limits) { l.MaxDepth = 2 }, "max-container-depth"},
		{"member", func(l *container.Limits) { l.MemberInMemory = int64(len(a)) - 1 }, "max-member-size"},
		{"one member each", func(l *container.Limits) { l.MaxMembers = 1 }, ""},
		{"members", func(l *container.Limits) { l.MaxMembers = 1 }, "max-container-members"},
		{"expanded", func(l *container.Limits) { l.MaxExpandedSize = int64(len(a)) - 1 }, "max-container-size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lim := DefaultContainerLimits()
			tc.lim(&lim)
			files := map[string][]byte{"p.tc": nest}
			if tc.name == "members" {
				files["p.tc"] = testArchive(tcMember{"x.exe", a, ""}, tcMember{"y.exe", a, ""})
			}
			dir := tree(t, files)
			rep := validate(t, policyFor(t, "{id: a, action: allow, sha256: "+sha(a)+"}"), Options{ContainerLimits: &lim}, dir)
			var le *container.LimitError
			found := false
			for _, r := range rep.Results {
				if errors.As(r.Err, &le) && le.Cap == tc.cap {
					found = true
				}
			}
			if tc.cap == "" {
				if len(rep.Results) != 1 || !rep.Results[0].Decision.Allowed() {
					t.Errorf("results %+v", rep.Results)
				}
				return
			}
			if !found || !rep.Failed() {
				for _, r := range rep.Results {
					t.Logf("%s: %v", r.Path, r.Err)
				}
				t.Errorf("no finding naming %s", tc.cap)
			}
		})
	}
}

// TestPolicyNewOverContainer: csv policy new writes rules for a
// container's members, and the policy allows them (and nothing changed).
func TestPolicyNewOverContainer(t *testing.T) {
	a, b := testbin.PE(testbin.PEOptions{}), testbin.ELF(testbin.ELFOptions{})
	dir := tree(t, map[string][]byte{"p.tc": testArchive(tcMember{"lib/a.dll", a, ""}, tcMember{"in.tc", testArchive(tcMember{"b", b, ""}), ""})})
	g, err := GeneratePolicy(context.Background(), GenerateOptions{Level: LevelHash, Name: "gen"}, dir)
	if err != nil {
		t.Fatal(err)
	}
	var comments []string
	for _, r := range g.Policy.Rules {
		if r.Comment != "" {
			comments = append(comments, r.Comment)
		}
	}
	if g.Files != 2 || len(comments) != 2 || !strings.HasSuffix(comments[0], "p.tc!/lib/a.dll") || !strings.HasSuffix(comments[1], "p.tc!/in.tc!/b") {
		t.Fatalf("%d files, rules for %q", g.Files, comments)
	}
	set, err := cipolicy.NewSet(cipolicy.SetOptions{}, g.Policy)
	if err != nil {
		t.Fatal(err)
	}
	if rep := validate(t, set, Options{}, dir); rep.Failed() || len(rep.Results) != 2 {
		t.Errorf("the generated policy does not allow the members: %+v", rep.Results)
	}
	b[len(b)-1] ^= 1
	dir2 := tree(t, map[string][]byte{"p.tc": testArchive(tcMember{"lib/a.dll", a, ""}, tcMember{"in.tc", testArchive(tcMember{"b", b, ""}), ""})})
	if rep := validate(t, set, Options{}, dir2); !rep.Failed() || rep.Summary.Blocked != 1 {
		t.Errorf("a changed member is not blocked: %+v", rep.Summary)
	}
}

// TestContainerLinks: a link member to a file (or a directory of files)
// the container holds and csv judges at its own path is listed as
// skipped; one that leads out of the container, to nothing, or round in a
// loop is blocked.
func TestContainerLinks(t *testing.T) {
	a := testbin.PE(testbin.PEOptions{})
	dir := tree(t, map[string][]byte{"p.tc": testArchive(
		tcMember{"usr/lib/libx.so", nil, "symlink:libx.so.1"}, // before its target
		tcMember{"usr/lib/libx.so.1", a, ""},
		tcMember{"lib", nil, "symlink:usr/lib"},              // a directory of judged files
		tcMember{"bin/abs", nil, "symlink:/usr/lib/libx.so"}, // a chain, from the root
		tcMember{"usr/bin/hard", nil, "hardlink:./usr/lib/libx.so.1"},
		tcMember{"out", nil, "symlink:../../etc/passwd"},
		tcMember{"none", nil, "symlink:missing"},
		tcMember{"loop1", nil, "symlink:loop2"},
		tcMember{"loop2", nil, "symlink:loop1"},
		tcMember{"hdir", nil, "hardlink:usr/lib"},
	)})
	rep := validate(t, policyFor(t, "{id: a, action: allow, sha256: "+sha(a)+"}"), Options{}, dir)
	var skipped, blocked []string
	for _, s := range rep.Skipped {
		skipped = append(skipped, s.Path)
	}
	for _, r := range rep.Results {
		if !r.Decision.Allowed() {
			blocked = append(blocked, r.Path)
			if !errors.Is(r.Err, container.ErrMember) {
				t.Errorf("%s: %v", r.Path, r.Err)
			}
		}
	}
	if want := []string{"p.tc", "p.tc!/usr/lib/libx.so", "p.tc!/lib", "p.tc!/bin/abs", "p.tc!/usr/bin/hard"}; !slices.Equal(skipped, want) {
		t.Errorf("skipped %q, want %q", skipped, want)
	}
	if want := []string{"p.tc!/out", "p.tc!/none", "p.tc!/loop1", "p.tc!/loop2", "p.tc!/hdir"}; !slices.Equal(blocked, want) {
		t.Errorf("blocked %q, want %q", blocked, want)
	}
}

// TestContainerMemberSecondRead: a member admitted only by a digest the
// policy defers (an Authenticode SHA1 rule beside SHA256 ones) is read
// again, from memory, and allowed, as a loose file is.
func TestContainerMemberSecondRead(t *testing.T) {
	a, b := testbin.PE(testbin.PEOptions{}), testbin.PE(testbin.PEOptions{Code: []byte{0x90, 0xc3}})
	set := policyFor(t,
		"{id: a, action: allow, authenticode_sha256: "+pageHex(t, a, cipolicy.AuthenticodeSHA256)+"}",
		"{id: b1, action: allow, authenticode_sha1: "+pageHex(t, b, cipolicy.AuthenticodeSHA1)+"}")
	dir := tree(t, map[string][]byte{"p.tc": testArchive(tcMember{"a.exe", a, ""}, tcMember{"b.exe", b, ""}), "b.exe": b})
	rep := validate(t, set, Options{}, dir)
	var got []string
	for _, r := range rep.Results {
		got = append(got, r.Path+" "+string(r.Decision.Verdict)+" "+r.Decision.Rule)
	}
	if want := []string{"b.exe allowed b1", "p.tc!/a.exe allowed a", "p.tc!/b.exe allowed b1"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestBinaryAndContainer: a file that reads both as a binary and as a
// container (a tar whose first member is named "\x7fELF...": the name is
// the header's first bytes) is blocked, loose or as a member, --include
// or not: judged as the ELF, the tar's members (here a DLL that tar -x
// lays down) went unjudged, and with --include '**/*.dll' the file was
// counted as excluded.
func TestBinaryAndContainer(t *testing.T) {
	var buf bytes.Buffer
	tw := stdtar.NewWriter(&buf)
	for _, m := range []struct {
		name string
		data []byte
	}{{"\x7fELF\x02\x01\x01", []byte("hello")}, {"evil.dll", peImg}} {
		if err := tw.WriteHeader(&stdtar.Header{Name: m.name, Typeflag: stdtar.TypeReg, Size: int64(len(m.data)), Mode: 0o644, Format: stdtar.FormatUSTAR}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(m.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	dir := tree(t, map[string][]byte{
		"poly.tar": buf.Bytes(),
		"outer.tc": testArchive(tcMember{"inner.tar", buf.Bytes(), ""}),
	})
	for _, include := range [][]string{nil, {"**/*.dll"}} {
		rep := validate(t, policyFor(t), Options{Include: include}, dir)
		blocked := map[string]string{}
		for _, r := range rep.Results {
			if r.Err != nil {
				blocked[r.Path] = r.Err.Error()
			}
		}
		for _, p := range []string{"poly.tar", "outer.tc!/inner.tar"} {
			if !strings.Contains(blocked[p], "both as ELF and as a tar container") {
				t.Errorf("include %q: %s: %q, want blocked as both ELF and tar", include, p, blocked[p])
			}
		}
	}
}

// TestIncludeNested: --include '**/*.dll' judges a DLL in a tar inside
// another container: the inner tar, whose own path --include does not
// name, is opened for its members as a loose container is (it was counted
// as excluded, and the DLL never judged).
func TestIncludeNested(t *testing.T) {
	var buf bytes.Buffer
	tw := stdtar.NewWriter(&buf)
	if err := tw.WriteHeader(&stdtar.Header{Name: "x.dll", Typeflag: stdtar.TypeReg, Size: int64(len(peImg)), Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(peImg); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	dir := tree(t, map[string][]byte{"outer.tc": testArchive(tcMember{"inner.tar", buf.Bytes(), ""}, tcMember{"y.so", elfImg, ""})})
	rep := validate(t, policyFor(t), Options{Include: []string{"**/*.dll"}}, dir)
	judged, _ := paths(rep)
	if want := []string{"outer.tc!/inner.tar!/x.dll"}; !slices.Equal(judged, want) {
		t.Errorf("judged %q, want %q", judged, want)
	}
	if rep.Summary.Excluded != 1 { // y.so
		t.Errorf("excluded %d, want 1", rep.Summary.Excluded)
	}
}

// testSigned is a container kind with a signature of its own
// (container.Signed), as an MSI or a cabinet is: a PE file named *.tsc,
// judged as a PE file, whose members are a testContainer archive appended
// to it.
type testSigned struct{}

func (testSigned) Kind() container.Kind { return "testsc" }
func (testSigned) JudgedAs() string     { return string(FormatPE) }

func (testSigned) Sniff(head []byte, name string) bool {
	return bytes.HasPrefix(head, []byte("MZ")) && strings.HasSuffix(name, ".tsc")
}

func (testSigned) Walk(ctx context.Context, src io.ReaderAt, size int64, name string, lim *container.Limits, yield func(*container.Member, io.Reader) error) error {
	b := make([]byte, size)
	if _, err := src.ReadAt(b, 0); err != nil {
		return err
	}
	i := bytes.LastIndex(b, []byte(testMagic))
	if i < 0 {
		return &signing.MalformedError{Format: "testsc", Offset: -1, Reason: "no members"}
	}
	return testContainer{}.Walk(ctx, bytes.NewReader(b[i:]), size-int64(i), name, lim, yield)
}

func init() { container.Register(testSigned{}) }

// TestSignedContainer: a container with a signature of its own is judged as
// its format and its members follow it, loose and nested; one whose own
// reading is malformed is blocked, its members not walked; under --include
// that leaves it out, only its members are judged.
func TestSignedContainer(t *testing.T) {
	good := testbin.PE(testbin.PEOptions{})
	bad := testbin.PE(testbin.PEOptions{Code: []byte{0x90, 0xc3}})
	pkg := append(slices.Clone(good), testArchive(tcMember{"bin/app.exe", good, ""}, tcMember{"bin/tool.exe", bad, ""})...)
	// A PE file whose certificate table lies past its end.
	broken := append(slices.Clone(good), testArchive(tcMember{"x.exe", good, ""})...)
	pf, err := binpe.Parse(bytes.NewReader(broken), int64(len(broken)))
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint32(broken[pf.CertDirOffset:], uint32(len(broken)+8))
	binary.LittleEndian.PutUint32(broken[pf.CertDirOffset+4:], 16)
	dir := tree(t, map[string][]byte{
		"a/pkg.tsc":    pkg,
		"b/outer.tc":   testArchive(tcMember{"in/pkg.tsc", pkg, ""}),
		"c/broken.tsc": broken,
	})
	set := policyFor(t,
		"{id: good, action: allow, sha256: "+sha(good)+"}",
		"{id: pkg, action: allow, sha256: "+sha(pkg)+"}")
	rep := validate(t, set, Options{Jobs: 2}, dir)
	var got []string
	for _, r := range rep.Results {
		got = append(got, fmt.Sprintf("%s %s %s", r.Path, r.Decision.Verdict, r.Format))
	}
	want := []string{
		"a/pkg.tsc allowed pe",
		"a/pkg.tsc!/bin/app.exe allowed pe",
		"a/pkg.tsc!/bin/tool.exe blocked pe",
		"b/outer.tc!/in/pkg.tsc allowed pe",
		"b/outer.tc!/in/pkg.tsc!/bin/app.exe allowed pe",
		"b/outer.tc!/in/pkg.tsc!/bin/tool.exe blocked pe",
		"c/broken.tsc blocked pe",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("results:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if r := rep.Results[6]; !errors.Is(r.Err, signing.ErrMalformed) {
		t.Errorf("%s: err %v", r.Path, r.Err)
	}
	rep = validate(t, set, Options{Include: []string{"**/*.exe"}}, dir)
	judged, _ := paths(rep)
	if want := []string{"a/pkg.tsc!/bin/app.exe", "a/pkg.tsc!/bin/tool.exe", "b/outer.tc!/in/pkg.tsc!/bin/app.exe", "b/outer.tc!/in/pkg.tsc!/bin/tool.exe", "c/broken.tsc!/x.exe"}; !slices.Equal(judged, want) {
		t.Errorf("with --include: judged %q, want %q", judged, want)
	}
}

// TestContainerMembersDispatched: members held in memory are inspected by
// whichever worker is free while the container's worker reads on; the
// results keep the container's order, whatever the number of workers, and
// a run where every worker walks a container (each waiting for its
// members' tasks) still ends.
func TestContainerMembersDispatched(t *testing.T) {
	good := testbin.PE(testbin.PEOptions{})
	bad := testbin.PE(testbin.PEOptions{Code: []byte{0x90, 0xc3}})
	elf := testbin.ELF(testbin.ELFOptions{})
	files := map[string][]byte{}
	var want []string
	for c := range 4 {
		var ms []tcMember
		for i := range 150 {
			b, v := good, "allowed"
			switch i % 3 {
			case 1:
				b, v = bad, "blocked"
			case 2:
				b = elf
			}
			name := fmt.Sprintf("m%03d", i)
			ms = append(ms, tcMember{name, b, ""})
			want = append(want, fmt.Sprintf("c%d.tc!/%s %s", c, name, v))
		}
		files[fmt.Sprintf("c%d.tc", c)] = testArchive(ms...)
	}
	dir := tree(t, files)
	set := policyFor(t, "{id: good, action: allow, sha256: "+sha(good)+"}", "{id: elf, action: allow, sha256: "+sha(elf)+"}")
	for _, jobs := range []int{1, 2, 4, 8} {
		rep := validate(t, set, Options{Jobs: jobs}, dir)
		var got []string
		for _, r := range rep.Results {
			got = append(got, fmt.Sprintf("%s %s", r.Path, r.Decision.Verdict))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("jobs %d: %d results, want %d; first difference at %d", jobs, len(got), len(want), firstDiff(got, want))
		}
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
