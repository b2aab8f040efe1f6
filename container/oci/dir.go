package oci

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"sync"

	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/internal/limits"
)

// Dir is an OCI image layout directory on disk (oci-layout, index.json,
// blobs/<alg>/<hex>, as skopeo copy oci:DIR, podman push oci:DIR, buildah
// and crane write it), opened for [Reader.Walk]: passed as Walk's src, it
// is read like an image layout archive, every image's layers with their
// whiteouts applied, and every file of the directory must be one the
// images use. Its files are listed once, when Walk begins, and read
// within the directory only (an [os.Root]: a symbolic link inside it is
// read as the tarball's are, by name, never followed out of it).
//
// As an [io.ReaderAt], a Dir is its files end to end in the order of
// their names, which Walk reads only file by file.
type Dir struct {
	root  *os.Root
	path  string
	files []dirFile // by offset
	links map[string]string
	size  int64

	mu  sync.Mutex
	cur int // index of the open file, -1: none
	f   *os.File
}

type dirFile struct {
	name      string
	off, size int64
}

// IsLayoutDir reports whether the directory at dir is an OCI image layout:
// it holds a file (or a symbolic link) named oci-layout, which the
// specification requires at its top. What else it holds is checked when
// it is walked.
func IsLayoutDir(dir string) bool {
	fi, err := os.Lstat(dir + string(os.PathSeparator) + "oci-layout")
	return err == nil && (fi.Mode().IsRegular() || fi.Mode()&fs.ModeSymlink != 0)
}

// NewDir returns the OCI image layout directory at dir, to pass to
// [Reader.Walk] as its src (size is not used): Walk lists its files, at
// most [limits.MaxImageBlobs] entries, directories included, regular
// files and symbolic links (anything else is a malformed layout), and
// reads them. Close it once walked.
func NewDir(dir string) *Dir {
	return &Dir{path: dir, cur: -1}
}

// list opens the directory and lists its files (once).
func (d *Dir) list() error {
	if d.root != nil {
		return nil
	}
	root, err := os.OpenRoot(d.path)
	if err != nil {
		return malformed("opening the image layout directory: %v", unwrapPathError(err))
	}
	d.root, d.links = root, map[string]string{}
	n := 0
	return fs.WalkDir(root.FS(), ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return malformed("listing the image layout directory: %v", err)
		}
		if n++; n > limits.MaxImageBlobs {
			return &container.LimitError{Cap: "MaxImageBlobs", Value: limits.MaxImageBlobs,
				What: fmt.Sprintf("the image layout directory holds more than %d entries", limits.MaxImageBlobs)}
		}
		if p == "." {
			return nil
		}
		switch t := e.Type(); {
		case t.IsDir():
		case t.IsRegular():
			fi, err := e.Info()
			if err != nil {
				return malformed("image layout file %s: %v", p, err)
			}
			d.files = append(d.files, dirFile{name: p, off: d.size, size: fi.Size()})
			d.size += fi.Size()
		case t&fs.ModeSymlink != 0:
			target, err := root.Readlink(p)
			if err != nil {
				return malformed("image layout link %s: %v", p, err)
			}
			d.links[p] = target
		default:
			return malformed("image layout entry %s is a %s, not a file, directory or symbolic link", p, typeName(t))
		}
		return nil
	})
}

func typeName(t fs.FileMode) string {
	switch {
	case t&fs.ModeNamedPipe != 0:
		return "FIFO"
	case t&fs.ModeSocket != 0:
		return "socket"
	case t&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

// Size is the sum of the sizes of its files, once listed.
func (d *Dir) Size() int64 { return d.size }

// Close closes the directory and the file open in it.
func (d *Dir) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f != nil {
		d.f.Close()
		d.f, d.cur = nil, -1
	}
	if d.root == nil {
		return nil
	}
	return d.root.Close()
}

// ReadAt reads from the file holding offset off, no further than its end.
// A file that is no longer the regular file of the size listed is an
// error naming it.
func (d *Dir) ReadAt(p []byte, off int64) (int, error) {
	i := sort.Search(len(d.files), func(i int) bool { return d.files[i].off+d.files[i].size > off })
	if off < 0 || i == len(d.files) || off < d.files[i].off {
		return 0, io.EOF
	}
	df := d.files[i]
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cur != i {
		if d.f != nil {
			d.f.Close()
			d.f, d.cur = nil, -1
		}
		f, err := d.root.OpenFile(df.name, os.O_RDONLY|openNonblock, 0)
		if err != nil {
			return 0, malformed("opening %s: %v", path.Join(d.path, df.name), unwrapPathError(err))
		}
		st, err := f.Stat()
		if err != nil || !st.Mode().IsRegular() || st.Size() != df.size {
			f.Close()
			return 0, malformed("%s changed while csv read the image layout", path.Join(d.path, df.name))
		}
		d.f, d.cur = f, i
	}
	rel := off - df.off
	if rem := df.size - rel; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := d.f.ReadAt(p, rel)
	if errors.Is(err, io.EOF) && n < len(p) {
		return n, malformed("%s changed while csv read the image layout", path.Join(d.path, df.name))
	}
	return n, nil
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// archive returns the directory's files as the outer archive Walk reads.
func (d *Dir) archive() (*archive, error) {
	if err := d.list(); err != nil {
		return nil, err
	}
	a := &archive{src: d, what: "image layout directory", files: map[string]file{}, links: map[string]string{}, used: map[string]bool{}}
	for _, f := range d.files {
		name, err := container.CleanName(f.name)
		if err != nil {
			return nil, malformed("image layout file %s: %v", f.name, err)
		}
		a.files[name] = file{off: f.off, size: f.size}
	}
	for n, t := range d.links {
		name, err := container.CleanName(n)
		if err != nil {
			return nil, malformed("image layout link %s: %v", n, err)
		}
		a.links[name] = t
	}
	return a, nil
}
