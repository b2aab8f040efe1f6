// Package deb reads Debian binary packages (Kind "deb") and other ar
// archives (Kind "ar", static libraries) as containers.
//
// A Debian package is an ar archive ("!<arch>\n") whose first member is
// debian-binary. Its members, in this order, as dpkg-deb(1) requires:
//
//   - debian-binary, holding exactly "2.0\n";
//   - control.tar, uncompressed or .gz, .xz, .zst: its members are yielded
//     under DEBIAN/, as dpkg-deb -R lays them out ("DEBIAN/postinst");
//   - data.tar, uncompressed or .gz, .xz, .zst, .bz2, .lzma: its members
//     are yielded under their installed names ("usr/lib/modules/6.1/x.ko").
//
// Members whose names start with '_' may stand anywhere after
// debian-binary; dpkg ignores them. They are yielded as regular members
// under their ar names, without a Problem: a package signature made by
// debsigs or dpkg-sig (_gpgorigin, _gpgbuilder) is so reported as present,
// and is not verified; whatever else such a member holds is judged like
// any file. Any other member is yielded with a Problem (dpkg-deb refuses
// it); a package whose first member is not debian-binary "2.0\n", whose
// control.tar or data.tar is missing, out of order, repeated or compressed
// otherwise, is malformed (Walk's error). Both tars share one set of names
// (a data member named DEBIAN/x clashes with control's x) and one member
// count.
//
// # Security
//
// The ar headers are untrusted: every size is checked against the
// archive's size before anything is read; only the GNU long-name table is
// read into memory, up to MaxNameTable. The tars are read by container/tar
// and container/compress, with their caps; an uncompressed tar's members
// are read from the package at their offsets.
package deb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/container/compress"
	"github.com/codesignval/csv/container/tar"
)

// Reader reads Debian binary packages.
type Reader struct{}

var _ container.Reader = Reader{}

// Kind is "deb".
func (Reader) Kind() container.Kind { return "deb" }

// Sniff reports an ar archive whose first member is named debian-binary
// (dpkg-deb's "debian-binary   " or GNU ar's "debian-binary/  ").
func (Reader) Sniff(head []byte, name string) bool {
	if !bytes.HasPrefix(head, []byte(Magic)) || len(head) < 8+16 {
		return false
	}
	n := strings.TrimRight(string(head[8:8+16]), " ")
	return n == "debian-binary" || n == "debian-binary/"
}

// compressions maps a tar member's suffix to its compression.
var compressions = map[string]compress.Format{
	"": 0, ".gz": compress.Gzip, ".xz": compress.XZ, ".zst": compress.Zstd, ".bz2": compress.Bzip2, ".lzma": compress.LZMA,
}

// Walk yields the package's members (see the package documentation).
func (Reader) Walk(ctx context.Context, src io.ReaderAt, size int64, name string, lim *container.Limits, yield func(*container.Member, io.Reader) error) error {
	a, err := newAr(src, size, "deb")
	if err != nil {
		return err
	}
	tw := &tar.Walker{Format: "deb", Names: container.Names{}}
	const (
		wantVersion = iota
		wantControl
		wantData
		done
	)
	state := wantVersion
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		am, err := a.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		tw.Members++
		if err := checkMembers(lim, tw.Members, "deb"); err != nil {
			return err
		}
		switch {
		case state == wantVersion:
			if am.name != "debian-binary" {
				return a.malformed(am.hdr, "the first member is %q, not debian-binary", am.name)
			}
			var v [5]byte
			if am.size != 4 {
				return a.malformed(am.off, "debian-binary holds %d bytes, not \"2.0\\n\"", am.size)
			}
			if _, err := src.ReadAt(v[:4], am.off); err != nil || string(v[:4]) != "2.0\n" {
				return a.malformed(am.off, "debian-binary holds %q, not \"2.0\\n\"", v[:4])
			}
			state = wantControl
		case strings.HasPrefix(am.name, "_"):
			if err := yieldMember(ctx, src, am, "deb", tw.Names, lim, yield); err != nil {
				return err
			}
		case strings.HasPrefix(am.name, "control.tar") || strings.HasPrefix(am.name, "data.tar"):
			part, suffix, _ := strings.Cut(am.name, ".tar")
			want := map[int]string{wantControl: "control", wantData: "data"}[state]
			if state == done {
				return a.malformed(am.hdr, "member %s after data.tar", am.name)
			}
			if part != want {
				return a.malformed(am.hdr, "member %s where dpkg-deb wants %s.tar", am.name, want)
			}
			f, ok := compressions[suffix]
			if !ok || (part == "control" && (f == compress.Bzip2 || f == compress.LZMA)) {
				return a.malformed(am.hdr, "member %s: dpkg-deb reads no such compression", am.name)
			}
			tw.Prefix = ""
			if part == "control" {
				tw.Prefix = "DEBIAN/"
			}
			s := io.NewSectionReader(src, am.off, am.size)
			if f == 0 {
				if !isTar(s) {
					return a.malformed(am.off, "member %s is not a tar", am.name)
				}
				err = tw.Walk(ctx, s, lim, yield)
			} else {
				cw := compress.Walker{Format: f, Tar: tw, TarOnly: true}
				err = cw.Walk(ctx, s, am.name, lim, yield)
			}
			if err != nil {
				return err
			}
			state++
		default:
			m := &container.Member{Name: am.name, Type: container.Regular, Size: am.size,
				Problem: fmt.Errorf("%w: member %s of the package's ar is none that dpkg-deb reads (debian-binary, control.tar, data.tar, _*)", container.ErrMember, am.name)}
			if err := yield(m, nil); err != nil {
				return err
			}
		}
	}
	switch state {
	case wantVersion:
		return a.malformed(-1, "no members")
	case wantControl:
		return a.malformed(-1, "no control.tar member")
	case wantData:
		return a.malformed(-1, "no data.tar member")
	}
	return nil
}

// isTar reports whether s starts with a tar header (it may also be empty of
// members: two zero blocks).
func isTar(s *io.SectionReader) bool {
	var blk [tar.BlockSize]byte
	if _, err := s.ReadAt(blk[:], 0); err != nil {
		return false
	}
	return tar.IsHeader(blk[:]) || blk == [tar.BlockSize]byte{}
}
