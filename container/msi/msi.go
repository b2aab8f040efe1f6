// Package msi reads Windows Installer files (.msi, .msp, .mst: compound
// files, internal/binfmt/cfb) as containers: the streams an installer uses
// as files are its members, judged as loose files are. An installer's own
// Authenticode signature is judged by the msi format handler
// (csv/format/msi): the reader is a container.Signed whose files are
// judged as format "msi", then walked.
//
// # Members
//
// Every stream of the root storage is a member but the database's own:
// the tables (stream names starting with U+4840 once decoded) and four
// \x05 streams by their exact names (the two signature streams, the two
// summary information property sets); every storage is walked. An
// installation package's Media table is read (database.go) for the files
// it installs from outside itself: an embedded cabinet it names and does
// not hold, an external cabinet, uncompressed source files are each a
// member with a Problem saying so (a container.ExternalError naming the
// external cabinet, which the validator judges where it lies beside the
// package in the tree). So the members are the Binary table's
// streams ("Binary.<key>": custom action DLLs and scripts), the Icon
// table's ("Icon.<key>"), the embedded cabinets the Media table names
// ("#app.cab" is the stream "app.cab"; the cabinet reader then walks
// them as nested containers, "setup.msi!/app.cab!/app.exe"), and any
// other stream, whatever table names it or none: csv does not read the
// tables to pick, so a stream no table names is judged too rather than
// passed over. Streams of sub-storages (embedded transforms, nested
// installers) are members named "storage/stream". Names are decoded from
// Windows Installer's stream-name encoding as msitools decodes them (the
// tests compare with msiinfo streams and msiextract).
//
// Sniff sees the first 4 KiB of a file, where the root storage's CLSID
// (which tells an installer from an Office document) often is not: every
// compound file is walked, so that no installer's members go unjudged;
// an Office document's streams then are members too, judged if they are
// binaries and passed over as files of no format otherwise.
//
// # Security
//
// The compound file is parsed by internal/binfmt/cfb (every chain checked
// once; loops, shared sectors, duplicate names refused): a file it
// refuses is a *signing.MalformedError from Walk. A decoded name that
// container.CleanName refuses, or that two streams share, is a member
// with Problem set.
package msi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/internal/binfmt/cfb"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode/msi"
)

// databaseStream reports whether a root stream, by its name as stored, is
// the database's own rather than a file: a table (stored names start with
// U+4840), or one of the signature and summary information streams, by
// their exact stored names. Any other name starting with \x05 is a stream
// like any other: Windows Installer's stream-name encoder keeps \x05 as it
// is, so a Media table's "#\x05app.cab" opens the stream "\x05" followed
// by the encoded "app.cab", whose files it installs. Storages are never
// the database's own (tables are streams): every one is walked.
func databaseStream(stored string) bool {
	switch stored {
	case msi.SignatureStream, msi.SignatureExStream, "\x05SummaryInformation", "\x05DocumentSummaryInformation":
		return true
	}
	return strings.HasPrefix(stored, msi.TablePrefix)
}

// endsAsArchive refuses a compound file whose last bytes end an archive
// (container.SniffTail: a zip's end record): appended after the last
// sector, or in the unused end of a sector or an unused directory entry,
// which no stream holds and no signature covers. unzip and the zip
// libraries read an archive from its end and would lay down members the
// walk of the streams never reaches.
func endsAsArchive(src io.ReaderAt, size int64) error {
	tail := make([]byte, min(size, container.TailSize))
	if _, err := src.ReadAt(tail, size-int64(len(tail))); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("msi: reading the file's end: %w", err)
	}
	if kind := container.SniffTail(tail); kind != "" {
		return &signing.MalformedError{Format: cfb.Format, Offset: size - int64(len(tail)),
			Reason: fmt.Sprintf("the compound file's last bytes end a %s archive: extractors read it from there and lay down members that are in no stream, which csv does not judge", kind)}
	}
	return nil
}

// Kind is the container kind.
const Kind container.Kind = "msi"

// Reader reads Windows Installer files.
type Reader struct{}

var _ container.Signed = Reader{}

// Kind implements container.Reader.
func (Reader) Kind() container.Kind { return Kind }

// JudgedAs implements container.Signed: the file is judged as an MSI.
func (Reader) JudgedAs() string { return string(cipolicy.FormatMSI) }

// Sniff implements container.Reader: the compound file signature.
func (Reader) Sniff(head []byte, _ string) bool { return cfb.Sniff(head) }

// Walk implements container.Reader.
func (Reader) Walk(ctx context.Context, src io.ReaderAt, size int64, name string, lim *container.Limits, yield func(*container.Member, io.Reader) error) error {
	l := container.DefaultLimits()
	if lim != nil {
		l = lim
	}
	if l.Expanded == nil {
		l.Expanded = new(int64)
	}
	if l.MaxDepth > 0 && l.Depth > l.MaxDepth {
		return &container.LimitError{Cap: "max-container-depth", Value: int64(l.MaxDepth),
			What: fmt.Sprintf("msi %s is nested %d deep", name, l.Depth)}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := cfb.Parse(src, size)
	if err != nil {
		return err
	}
	if err := endsAsArchive(src, size); err != nil {
		return err
	}
	var media []mediaRow
	if f.Entries[0].CLSID == msi.CLSIDPackage {
		if media, err = readMedia(f); err != nil {
			return err
		}
	}
	names := container.Names{}
	count := 0
	var walk func(dir int, prefix string) error
	walk = func(dir int, prefix string) error {
		for _, c := range f.Entries[dir].Children {
			e := &f.Entries[c]
			decoded := msi.DecodeName(e.Name)
			if dir == 0 && e.Type == cfb.TypeStream && databaseStream(e.Name) {
				continue
			}
			if e.Type == cfb.TypeStorage {
				sub := prefix + decoded + "/"
				if len(sub) > limits.MaxMemberName {
					// Storages nested so deep that their streams' names
					// pass the cap: one blocked member, not a path built
					// anew at each of thousands of levels (quadratic).
					m := &container.Member{Name: sub[:64] + "...", Type: container.Regular,
						Problem: fmt.Errorf("%w: storages nested %d bytes of path deep, over the cap of %d (limits.MaxMemberName): the streams they hold cannot be judged", container.ErrMember, len(sub), limits.MaxMemberName)}
					if err := yield(m, nil); err != nil {
						return err
					}
					continue
				}
				if err := walk(c, sub); err != nil {
					return err
				}
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if count++; l.MaxMembers > 0 && count > l.MaxMembers {
				return &container.LimitError{Cap: "max-container-members", Value: int64(l.MaxMembers),
					What: fmt.Sprintf("msi %s holds more than %d members", name, l.MaxMembers)}
			}
			m := &container.Member{Name: prefix + decoded, Type: container.Regular, Size: e.Size}
			clean, err := container.CleanName(m.Name)
			if err == nil {
				m.Name = clean
				err = names.Add(container.NameKey(clean))
			}
			if err != nil {
				m.Problem = err
				if err := yield(m, nil); err != nil {
					return err
				}
				continue
			}
			s, err := f.Open(c)
			if err != nil {
				return err
			}
			r := &container.Meter{R: s, Ctx: ctx, Lim: l, Name: m.Name, Declared: e.Size, Format: cfb.Format}
			if err := yield(m, r); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(0, ""); err != nil {
		return err
	}
	return yieldMedia(f, media, yield)
}

// yieldMedia yields a member with a problem for every disk of the Media
// table whose files are not in the package: an embedded cabinet ("#name")
// the package does not hold, an external cabinet (a name without "#"),
// files laid down uncompressed from beside the package (no cabinet, or
// files marked msidbFileAttributesNoncompressed). Windows Installer
// installs them from where the package was opened, and csv judges only
// what the package holds.
func yieldMedia(f *cfb.File, media []mediaRow, yield func(*container.Member, io.Reader) error) error {
	// The root's streams by decoded name: true for those walked as
	// members, false for the database's own (a table, a signature).
	streams := map[string]bool{}
	for _, c := range f.Entries[0].Children {
		if e := &f.Entries[c]; e.Type == cfb.TypeStream {
			streams[msi.DecodeName(e.Name)] = !databaseStream(e.Name)
		}
	}
	seen := map[string]bool{} // one finding a name: disks may share a cabinet
	problem := func(name string, err error) error {
		if seen[name] {
			return nil
		}
		seen[name] = true
		m := &container.Member{Name: name, Type: container.Regular, Problem: err}
		if clean, cerr := container.CleanName(name); cerr == nil {
			m.Name = clean
		}
		return yield(m, nil)
	}
	for _, m := range media {
		files := fmt.Sprintf("%d files", m.Files)
		if m.Files == 1 {
			files = "1 file"
		}
		switch stream, embedded := strings.CutPrefix(m.Cabinet, "#"); {
		case embedded && !streams[stream]:
			own, found := streams[stream]
			if found && !own {
				err := fmt.Errorf("%w: the Media table's disk %d names the database's own stream %q as its embedded cabinet, which csv does not judge as a member: its %s are installed from bytes csv does not judge", container.ErrMember, m.Disk, stream, files)
				if err := problem(stream, err); err != nil {
					return err
				}
				break
			}
			err := fmt.Errorf("%w: the Media table's disk %d names the embedded cabinet %q, and the package holds no stream %q: its %s are installed from a cabinet csv cannot see", container.ErrMember, m.Disk, m.Cabinet, stream, files)
			if err := problem(stream, err); err != nil {
				return err
			}
		case !embedded && m.Cabinet != "" && m.Files > 0:
			err := &container.ExternalError{Name: m.Cabinet, Reason: fmt.Sprintf("the Media table's disk %d installs %s from the external cabinet %q, beside the package, not inside it: csv cannot judge them here; validate that cabinet too (csv validate judges it as a loose file where it is in the tree validated)", m.Disk, files, m.Cabinet)}
			if err := problem(m.Cabinet, err); err != nil {
				return err
			}
		case m.Cabinet == "" && m.Files > 0:
			err := &container.ExternalError{Reason: fmt.Sprintf("the Media table's disk %d names no cabinet: its %s are laid down uncompressed from the source beside the package, not from inside it: csv cannot judge them here; validate the source files too", m.Disk, files)}
			if err := problem(fmt.Sprintf("Media disk %d (uncompressed source files)", m.Disk), err); err != nil {
				return err
			}
		}
		if m.Uncompressed > 0 && m.Cabinet != "" {
			err := &container.ExternalError{Reason: fmt.Sprintf("%d of the %s of the Media table's disk %d are marked uncompressed (msidbFileAttributesNoncompressed): they are laid down from the source beside the package, not from its cabinet: csv cannot judge them here; validate the source files too", m.Uncompressed, files, m.Disk)}
			if err := problem(fmt.Sprintf("Media disk %d (uncompressed source files)", m.Disk), err); err != nil {
				return err
			}
		}
	}
	return nil
}
