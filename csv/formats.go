package csv

import (
	"github.com/codesignval/csv/csv/format"
	"github.com/codesignval/csv/csv/format/appx"
	"github.com/codesignval/csv/csv/format/cab"
	"github.com/codesignval/csv/csv/format/catalog"
	"github.com/codesignval/csv/csv/format/elf"
	"github.com/codesignval/csv/csv/format/image"
	"github.com/codesignval/csv/csv/format/msi"
	"github.com/codesignval/csv/csv/format/pe"
	"github.com/codesignval/csv/csv/format/powershell"
	"github.com/codesignval/csv/csv/format/wsh"
)

// handlers are the file formats csv judges, in the order their Sniff is
// tried: the one list the pipeline (inspection, signing) ranges over. A new
// file kind is a package under csv/format and a line here (see "Adding a
// file kind" in docs/architecture.md).
var handlers = []format.Handler{
	pe.Handler{},
	elf.Handler{},
	catalog.Handler{},
	cab.Handler{},        // by content (MSCF)
	msi.Handler{},        // by content (a compound file with an installer's root)
	appx.Handler{},       // by name and a zip's magic (MSIX/APPX packages)
	image.Handler{},      // squashfs, EROFS, ext4: dm-verity (csv/format/image)
	powershell.Handler{}, // by name: after the formats told by content
	wsh.Handler{},        // by name; judged by SHA256 only
}

// sniff returns the handler of the file's format, or nil for a file of no
// format csv judges.
func sniff(f *format.File) format.Handler {
	for _, h := range handlers {
		if h.Sniff(f) {
			return h
		}
	}
	return nil
}

// lookalike reports whether a file of no format starts as the files of a
// format do (format.Lookalike).
func lookalike(f *format.File) bool {
	for _, h := range handlers {
		if l, ok := h.(format.Lookalike); ok && l.LooksLike(f) {
			return true
		}
	}
	return false
}

// Formats lists the formats csv judges, in the order they are recognised.
func Formats() []Format {
	out := make([]Format, len(handlers))
	for i, h := range handlers {
		out[i] = h.Format()
	}
	return out
}
