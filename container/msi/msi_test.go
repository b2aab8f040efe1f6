package msi_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/container/msi"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/internal/testmsi"
	"github.com/codesignval/csv/signing"
)

var (
	dll = bytes.Repeat([]byte("custom action DLL "), 300)
	exe = testbin.PE(testbin.PEOptions{Data: bytes.Repeat([]byte{7}, 9000)})
)

func build(t testing.TB) []byte {
	t.Helper()
	return testmsi.Build(t,
		testmsi.File{Name: "app.exe", Data: exe},
		testmsi.File{Name: "CustomDll", Data: dll, Binary: true},
		testmsi.File{Name: "Tiny", Data: []byte("MZ tiny"), Binary: true},
	)
}

type member struct {
	m    container.Member
	data []byte
}

func walk(t testing.TB, data []byte, lim *container.Limits) ([]member, error) {
	t.Helper()
	var out []member
	err := msi.Reader{}.Walk(context.Background(), bytes.NewReader(data), int64(len(data)), "p.msi", lim,
		func(m *container.Member, r io.Reader) error {
			mb := member{m: *m}
			if r != nil {
				b, err := io.ReadAll(r)
				if err != nil {
					return err
				}
				mb.data = b
			}
			out = append(out, mb)
			return nil
		})
	return out, err
}

// TestMembersMatchMsiinfo: the members are the streams msiinfo lists but
// the \x05 ones, with the bytes msiinfo extracts; the embedded cabinet
// holds the installed file (gcab lists it, msiextract lays it down).
func TestMembersMatchMsiinfo(t *testing.T) {
	msiinfo := testenv.Tool(t, "msiinfo")
	data := build(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "p.msi")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(msiinfo, "streams", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, n := range strings.Fields(string(out)) {
		if !strings.HasPrefix(n, "\x05") {
			want = append(want, n)
		}
	}
	members, err := walk(t, data, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range members {
		if m.m.Problem != nil {
			t.Errorf("%s: %v", m.m.Name, m.m.Problem)
		}
		got = append(got, m.m.Name)
		ext, err := exec.Command(msiinfo, "extract", path, m.m.Name).Output()
		if err != nil {
			t.Fatalf("msiinfo extract %s: %v", m.m.Name, err)
		}
		if !bytes.Equal(ext, m.data) || int64(len(m.data)) != m.m.Size {
			t.Errorf("%s: %d bytes (declared %d), msiinfo %d", m.m.Name, len(m.data), m.m.Size, len(ext))
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("members %q, msiinfo %q", got, want)
	}
	for _, m := range members {
		switch m.m.Name {
		case "Binary.CustomDll":
			if !bytes.Equal(m.data, dll) {
				t.Error("Binary.CustomDll differs from its source")
			}
		case "app.cab":
			if !bytes.HasPrefix(m.data, []byte("MSCF")) {
				t.Error("app.cab is not a cabinet")
			}
			if gcab, err := exec.LookPath("gcab"); err == nil {
				cab := filepath.Join(dir, "app.cab")
				os.WriteFile(cab, m.data, 0o600)
				x := filepath.Join(dir, "x")
				os.Mkdir(x, 0o700)
				if b, err := exec.Command(gcab, "-x", "-C", x, cab).CombinedOutput(); err != nil {
					t.Fatalf("gcab: %v %s", err, b)
				}
				ents, _ := os.ReadDir(x)
				if len(ents) != 1 {
					t.Fatalf("cabinet holds %v", ents)
				}
				if b, _ := os.ReadFile(filepath.Join(x, ents[0].Name())); !bytes.Equal(b, exe) {
					t.Errorf("the cabinet's file differs from app.exe")
				}
			}
		}
	}
	if msiextract, err := exec.LookPath("msiextract"); err == nil {
		x := filepath.Join(dir, "ex")
		if b, err := exec.Command(msiextract, "-C", x, path).CombinedOutput(); err != nil {
			t.Fatalf("msiextract: %v %s", err, b)
		}
		var found bool
		filepath.WalkDir(x, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				b, _ := os.ReadFile(p)
				found = found || bytes.Equal(b, exe)
			}
			return nil
		})
		if !found {
			t.Error("msiextract lays down no copy of app.exe")
		}
	}
}

// TestCapsAndMalformed: the member cap is a LimitError, a broken file a
// MalformedError.
func TestCapsAndMalformed(t *testing.T) {
	data := build(t)
	lim := container.DefaultLimits()
	lim.MaxMembers = 1
	if _, err := walk(t, data, lim); !errors.Is(err, container.ErrLimit) {
		t.Errorf("cap: %v", err)
	}
	lim = container.DefaultLimits()
	lim.MaxExpandedSize = 100
	if _, err := walk(t, data, lim); !errors.Is(err, container.ErrLimit) {
		t.Errorf("size cap: %v", err)
	}
	var me *signing.MalformedError
	if _, err := walk(t, data[:len(data)-600], nil); !errors.As(err, &me) {
		t.Errorf("truncated: %v", err)
	}
}

func FuzzWalk(f *testing.F) {
	data := build(f)
	f.Add(data)
	f.Add(data[:len(data)/2])
	for _, off := range []int{0x30, 0x4c, 0x600, 0x1000} {
		b := bytes.Clone(data)
		b[off] ^= 0x41
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		members, err := walk(t, b, nil)
		var me *signing.MalformedError
		if err != nil && !errors.As(err, &me) && !errors.Is(err, container.ErrLimit) {
			t.Fatalf("error %v (%T)", err, err)
		}
		for _, m := range members {
			if m.m.Problem == nil && int64(len(m.data)) != m.m.Size {
				t.Fatalf("%s: %d bytes, declared %d", m.m.Name, len(m.data), m.m.Size)
			}
		}
	})
}
