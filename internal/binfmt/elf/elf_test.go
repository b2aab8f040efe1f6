package elf

import (
	"bytes"
	stdelf "debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/codesignval/csv/internal/binfmt"
	"github.com/codesignval/csv/internal/testbin"
)

func parse(b []byte) (*File, error) { return Parse(bytes.NewReader(b), int64(len(b))) }

func TestParseValid(t *testing.T) {
	tests := []struct {
		name  string
		b     []byte
		class byte
		shnum int
	}{
		{"x86-64", testbin.ELF(testbin.ELFOptions{}), Class64, 3},
		{"i386", testbin.ELF(testbin.ELFOptions{Class32: true}), Class32, 3},
		{"no sections", testbin.ELF(testbin.ELFOptions{NoSections: true}), Class64, 0},
		{"trailing data", testbin.ELF(testbin.ELFOptions{Extra: []byte("~Module signature appended~\n")}), Class64, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parse(tt.b)
			if err != nil {
				t.Fatal(err)
			}
			if f.Class != tt.class || f.ShNum != tt.shnum || f.PhNum != 1 || f.Type != 2 {
				t.Errorf("class %d shnum %d phnum %d type %d", f.Class, f.ShNum, f.PhNum, f.Type)
			}
			// The standard library agrees on the header.
			sf, err := stdelf.NewFile(bytes.NewReader(tt.b))
			if err != nil {
				t.Fatalf("debug/elf: %v", err)
			}
			if int(sf.Machine) != int(f.Machine) || len(sf.Sections) != f.ShNum || uint64(sf.Entry) != f.Entry {
				t.Errorf("debug/elf: machine %v sections %d entry %#x; we: %d %d %#x", sf.Machine, len(sf.Sections), sf.Entry, f.Machine, f.ShNum, f.Entry)
			}
		})
	}
}

// TestParseSystemFiles parses the ELF files of this machine's /bin, if any.
func TestParseSystemFiles(t *testing.T) {
	n := 0
	for _, p := range []string{"/bin/ls", "/bin/sh", "/usr/bin/env", "/lib/x86_64-linux-gnu/libc.so.6"} {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.HasPrefix(b, []byte("\x7fELF")) {
			continue
		}
		if _, err := parse(b); err != nil {
			t.Errorf("%s: %v", p, err)
		}
		n++
	}
	if n == 0 {
		t.Skip("no system ELF files here")
	}
}

func TestParseMalformed(t *testing.T) {
	good := testbin.ELF(testbin.ELFOptions{})
	f, err := parse(good)
	if err != nil {
		t.Fatal(err)
	}
	mod := func(fn func([]byte)) []byte { c := bytes.Clone(good); fn(c); return c }
	le := binary.LittleEndian
	tests := []struct {
		name      string
		b         []byte
		truncated bool
		want      string
	}{
		{"ident only", good[:12], true, "identification"},
		{"truncated header", good[:40], true, "ELF header"},
		{"truncated section headers", good[:len(good)-10], true, "section header table"},
		{"truncated segment", testbin.ELF(testbin.ELFOptions{NoSections: true})[:122], true, "loadable segment"},
		{"bad class", mod(func(b []byte) { b[4] = 3 }), false, "EI_CLASS"},
		{"bad data", mod(func(b []byte) { b[5] = 0 }), false, "EI_DATA"},
		{"bad version", mod(func(b []byte) { b[6] = 2 }), false, "EI_VERSION"},
		{"bad e_version", mod(func(b []byte) { le.PutUint32(b[20:], 7) }), false, "e_version"},
		{"small e_ehsize", mod(func(b []byte) { le.PutUint16(b[52:], 10) }), false, "e_ehsize"},
		{"bad phentsize", mod(func(b []byte) { le.PutUint16(b[54:], 20) }), false, "e_phentsize"},
		{"bad shentsize", mod(func(b []byte) { le.PutUint16(b[58:], 20) }), false, "e_shentsize"},
		{"section headers past the end", mod(func(b []byte) { le.PutUint64(b[40:], 1<<40) }), true, "past the end"},
		{"section data past the end", mod(func(b []byte) { le.PutUint64(b[int(f.ShOff)+64+32:], 1<<20) }), true, "section data"},
		{"shstrndx out of range", mod(func(b []byte) { le.PutUint16(b[62:], 9) }), false, "e_shstrndx"},
		{"huge extended section count", mod(func(b []byte) {
			le.PutUint16(b[60:], 0)
			le.PutUint64(b[int(f.ShOff)+32:], 1<<40)
		}), false, "exceeds the limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(tt.b)
			var me *binfmt.MalformedError
			if !errors.As(err, &me) || me.Format != "ELF" {
				t.Fatalf("err = %v, want an ELF MalformedError", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %q, want it to mention %q", err, tt.want)
			}
			if got := strings.Contains(err.Error(), "truncated"); got != tt.truncated {
				t.Errorf("truncated = %v, want %v", got, tt.truncated)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add(testbin.ELF(testbin.ELFOptions{}))
	f.Add(testbin.ELF(testbin.ELFOptions{Class32: true}))
	f.Add(testbin.ELF(testbin.ELFOptions{NoSections: true}))
	if b, err := os.ReadFile("/bin/true"); err == nil && len(b) < 256<<10 {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ef, err := Parse(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			var me *binfmt.MalformedError
			if !errors.As(err, &me) || ef != nil {
				t.Fatalf("Parse = %v, %v", ef, err)
			}
			return
		}
		end := ef.PhOff + uint64(ef.PhNum)*uint64(ef.PhEntSize)
		if ef.PhNum > 0 && end > uint64(len(b)) {
			t.Fatalf("program headers end at %#x past %#x", end, len(b))
		}
	})
}
