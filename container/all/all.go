// Package all registers every container reader csv opens, in the order
// their Sniff is tried: the one list (import it for its effect, as csv and
// bench/refsha do). A new container kind is a package under container/ and
// a line here.
package all

import (
	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/container/appx"
	"github.com/codesignval/csv/container/cab"
	"github.com/codesignval/csv/container/compress"
	"github.com/codesignval/csv/container/deb"
	"github.com/codesignval/csv/container/msi"
	"github.com/codesignval/csv/container/oci"
	"github.com/codesignval/csv/container/rpm"
	"github.com/codesignval/csv/container/tar"
	"github.com/codesignval/csv/container/zip"
)

// Readers are the container readers, in the order they are tried: the
// kinds that are a special case of another first (a Debian package is an
// ar archive; an image archive is a tar).
var Readers = []container.Reader{
	msi.Reader{}, // compound files: before any reader that could claim one
	// MSIX/APPX packages (by name): zips judged as packages too, before zip
	appx.Reader{},
	zip.Reader{},
	deb.Reader{},
	deb.Ar{},
	rpm.Reader{},
	oci.Reader{},
	cab.Reader{},
	tar.Reader{},
	compress.GzipReader,
	compress.XZReader,
	compress.ZstdReader,
	compress.Bzip2Reader,
	compress.LZMAReader,
	compress.Unsupported{},
}

func init() {
	for _, r := range Readers {
		container.Register(r)
	}
}
