package format_test

import (
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codesignval/csv/csv/format"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testenv"
)

func TestUnjudgeable(t *testing.T) {
	thin64 := testbin.MachO(true, binary.LittleEndian)
	thin32 := testbin.MachO(false, binary.LittleEndian)
	cases := []struct {
		name string
		data []byte
		want string // "" for none
		// file(1) says this of it (a word of its description).
		peer string
	}{
		{"64-bit little-endian", thin64, "Mach-O (64-bit)", "Mach-O 64-bit"},
		{"32-bit little-endian", thin32, "Mach-O (32-bit)", "Mach-O"},
		{"64-bit big-endian", testbin.MachO(true, binary.BigEndian), "Mach-O (64-bit)", "Mach-O"},
		{"32-bit big-endian", testbin.MachO(false, binary.BigEndian), "Mach-O (32-bit)", "Mach-O"},
		{"fat", testbin.FatMachO(0xcafebabe, thin64, thin32), "fat (universal) Mach-O", "universal binary"},
		{"fat, one image", testbin.FatMachO(0xcafebabe, thin64), "fat (universal) Mach-O", "universal binary"},
		{"fat 64", testbin.FatMachO(0xcafebabf, thin64), "fat (universal) Mach-O", ""},
		{"Java 21 class", testbin.JavaClass(0, 65), "", "Java class"},
		{"Java 1.1 class", testbin.JavaClass(3, 45), "", "Java class"},
		{"Java preview class", testbin.JavaClass(0xffff, 66), "", "Java class"},
		{"short", []byte{0xfe, 0xed, 0xfa}, "", ""},
		{"magic alone, truncated", []byte{0xcf, 0xfa, 0xed, 0xfe}, "Mach-O (64-bit)", ""},
		{"cafebabe alone", []byte{0xca, 0xfe, 0xba, 0xbe}, "", ""},
		{"text", []byte("feedface, the magic"), "", ""},
	}
	var file string
	if _, err := exec.LookPath("file"); err == nil || os.Getenv("CSV_REQUIRE_PEERS") == "1" {
		file = testenv.Tool(t, "file")
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := format.Unjudgeable(c.data); got != c.want {
				t.Errorf("Unjudgeable = %q, want %q", got, c.want)
			}
			if c.peer == "" {
				return
			}
			if file == "" {
				t.Skip("file(1) is not installed: the peer's reading is not compared")
			}
			p := filepath.Join(t.TempDir(), "x")
			if err := os.WriteFile(p, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(file, "-b", p).Output()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(out), c.peer) {
				t.Errorf("file(1) says %q, want %q: the samples are not what the test thinks", strings.TrimSpace(string(out)), c.peer)
			}
		})
	}
	err := format.UnjudgeableError("a/tool", "Mach-O (64-bit)")
	if !errors.Is(err, format.ErrUnjudgeable) || !strings.HasPrefix(err.Error(), "a/tool: ") || !strings.Contains(err.Error(), "Mach-O (64-bit)") {
		t.Errorf("error %q", err)
	}
}

// FuzzUnjudgeable: any head is named one of the kinds or none, a class
// file of any version (major 45 or later) is never a Mach-O, and a
// verdict depends on the first 8 bytes alone.
func FuzzUnjudgeable(f *testing.F) {
	f.Add(testbin.MachO(true, binary.LittleEndian)[:64])
	f.Add(testbin.FatMachO(0xcafebabe, testbin.MachO(true, binary.LittleEndian))[:64])
	f.Add(testbin.JavaClass(0, 65))
	f.Add([]byte{0xca, 0xfe})
	f.Fuzz(func(t *testing.T, head []byte) {
		got := format.Unjudgeable(head)
		switch got {
		case "", "Mach-O (32-bit)", "Mach-O (64-bit)", "fat (universal) Mach-O":
		default:
			t.Fatalf("kind %q", got)
		}
		if len(head) >= 8 && binary.BigEndian.Uint32(head) == 0xcafebabe && binary.BigEndian.Uint16(head[6:]) >= 45 && got != "" {
			t.Fatalf("a class file of version %d.%d read as %s", binary.BigEndian.Uint16(head[6:]), binary.BigEndian.Uint16(head[4:]), got)
		}
		if len(head) > 8 && format.Unjudgeable(head[:8]) != got {
			t.Fatal("the verdict depends on more than 8 bytes")
		}
	})
}
