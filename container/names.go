package container

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"strings"

	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/signing"
)

// CleanName returns a stored member name in Member.Name's form: a leading
// "./" and "." elements dropped, a trailing "/" dropped. A name that is
// empty, absolute ("/x", "C:x", "\\x"), climbs out with "..", holds a NUL
// or a backslash (a separator on Windows, a letter elsewhere: ambiguous)
// is an error wrapping ErrMember.
func CleanName(stored string) (string, error) {
	bad := func(why string) (string, error) {
		return stored, fmt.Errorf("%w: name %q %s", ErrMember, stored, why)
	}
	switch {
	case stored == "":
		return bad("is empty")
	case len(stored) > limits.MaxMemberName:
		// Kept by the readers (repeated names, whiteouts, links) and by
		// the reports: a container of a few KB could otherwise hold
		// gigabytes of names (1 MiB each in a tar's PAX records).
		return stored[:64] + "...", fmt.Errorf("%w: a name of %d bytes, over the cap of %d (limits.MaxMemberName; Linux's PATH_MAX is 4096)", ErrMember, len(stored), limits.MaxMemberName)
	case strings.ContainsRune(stored, 0):
		return bad("holds a NUL byte")
	case strings.ContainsRune(stored, '\\'):
		return bad("holds a backslash, a separator on Windows")
	case strings.HasPrefix(stored, "/"):
		return bad("is absolute")
	case len(stored) >= 2 && stored[1] == ':':
		return bad("starts with a drive letter")
	}
	var parts []string
	for _, p := range strings.Split(stored, "/") {
		switch p {
		case "", ".":
			continue
		case "..":
			return bad("climbs out of the container with ..")
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return bad("names no file")
	}
	return strings.Join(parts, "/"), nil
}

// Names finds members stored twice under one name (after CleanName): an
// extractor keeps one of them, and which one differs between tools.
type Names map[string]struct{}

// Add records name and returns an error wrapping ErrMember when it was
// recorded before.
func (n Names) Add(name string) error {
	if _, ok := n[name]; ok {
		return fmt.Errorf("%w: %q is stored more than once (which copy an extractor keeps differs between tools)", ErrMember, name)
	}
	n[name] = struct{}{}
	return nil
}

// Meter delivers a member's decompressed bytes and enforces, as they flow,
// the member's declared size and the caps of lim: the container's expanded
// total, and the ratio of decompressed to compressed bytes (Compressed,
// when set, says how many compressed bytes were consumed so far). It
// checks ctx every MiB.
type Meter struct {
	R          io.Reader
	Ctx        context.Context
	Lim        *Limits
	Name       string // the member, for messages
	Declared   int64  // -1: not declared
	Compressed func() int64
	Format     string // for MalformedError

	n, sinceCheck int64
}

func (m *Meter) Read(p []byte) (int, error) {
	n, err := m.R.Read(p)
	m.n += int64(n)
	m.sinceCheck += int64(n)
	if m.Lim != nil && m.Lim.Expanded != nil {
		*m.Lim.Expanded += int64(n)
	}
	if m.Declared >= 0 && m.n > m.Declared {
		return n, &signing.MalformedError{Format: m.Format, Offset: -1,
			Reason: fmt.Sprintf("member %s holds more than the %d bytes its header declares", m.Name, m.Declared)}
	}
	if lerr := m.check(); lerr != nil {
		return n, lerr
	}
	if err == io.EOF && m.Declared >= 0 && m.n != m.Declared {
		return n, &signing.MalformedError{Format: m.Format, Offset: -1,
			Reason: fmt.Sprintf("member %s ends after %d of the %d bytes its header declares", m.Name, m.n, m.Declared), Err: io.ErrUnexpectedEOF}
	}
	return n, err
}

func (m *Meter) check() error {
	if m.sinceCheck >= 1<<20 {
		m.sinceCheck = 0
		if m.Ctx != nil {
			if err := m.Ctx.Err(); err != nil {
				return err
			}
		}
	}
	if m.Lim == nil {
		return nil
	}
	if m.Lim.Expanded != nil && m.Lim.MaxExpandedSize > 0 && *m.Lim.Expanded > m.Lim.MaxExpandedSize {
		return &LimitError{Cap: "max-container-size", Value: m.Lim.MaxExpandedSize,
			What: fmt.Sprintf("the container's members expand to more than %d bytes (at member %s)", m.Lim.MaxExpandedSize, m.Name)}
	}
	if m.Compressed != nil && m.Lim.MaxRatio > 0 && m.n > m.Lim.RatioGrace {
		if c := m.Compressed(); c <= 0 || m.n/max(c, 1) > m.Lim.MaxRatio {
			return &LimitError{Cap: "max-container-ratio", Value: m.Lim.MaxRatio,
				What: fmt.Sprintf("member %s expands %d bytes from %d", m.Name, m.n, c)}
		}
	}
	return nil
}

// Counter counts the bytes read through it: the compressed bytes a
// decompressor consumed, a stream's position.
type Counter struct {
	R io.Reader
	N int64
}

func (c *Counter) Read(p []byte) (int, error) {
	n, err := c.R.Read(p)
	c.N += int64(n)
	return n, err
}

// Delivered is how many bytes the meter has delivered.
func (m *Meter) Delivered() int64 { return m.n }

// NameKey is what a Names set keeps of a member's name: the name itself
// when short, its SHA-256 when longer than 64 bytes, so that the names of
// a container's members (a million of them, each up to the 1 MiB a tar
// PAX header holds) cost a bounded amount of memory, not the sum of their
// lengths. Readers pass Names.Add a NameKey and write their own message.
func NameKey(name string) string {
	if len(name) <= 64 {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return "\x00sha256:" + string(sum[:])
}
