package oci

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/signing"
)

const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
	// maxDepth caps the elements of a layer entry's name, whose ancestors
	// are each looked up in the whiteout tables.
	maxDepth = 256
)

// node is a path element of the layers above: whether one of them has
// an entry there (and whether it is a directory), deletes it, or makes it
// opaque.
type node struct {
	children                   map[string]*node
	seen, dir, deleted, opaque bool
}

// at returns the node of path p, made if need be.
func (n *node) at(p string) *node {
	for p != "" {
		el, rest, _ := strings.Cut(p, "/")
		c := n.children[el]
		if c == nil {
			if n.children == nil {
				n.children = map[string]*node{}
			}
			c = &node{}
			n.children[el] = c
		}
		n, p = c, rest
	}
	return n
}

// hidden reports whether a layer above the one being read hides p: it has
// p itself, deletes p or an ancestor, makes an ancestor opaque, or has a
// non-directory where p has an ancestor.
func (w *walker) hidden(p string) bool {
	n := w.upper
	for {
		el, rest, more := strings.Cut(p, "/")
		n = n.children[el]
		if n == nil {
			return false
		}
		if !more {
			return n.seen || n.deleted
		}
		if n.deleted || n.opaque || n.seen && !n.dir {
			return true
		}
		p = rest
	}
}

func (w *walker) entries(img *image, l layer, tr *tar.Reader) error {
	// What this layer adds to the tables, applied to the layers below it
	// once it is read.
	here := map[string]bool{}
	var deleted, opaque []string
	// The files of this layer yielded so far without a Problem (by
	// container.NameKey), each to the file whose bytes it has (itself, or
	// for a hard link, its target's): a hard link laid down now links to
	// the file on disk under its target's name, which is one of these, or
	// else a lower layer's file or one this layer replaces later, whose
	// bytes csv does not judge under that name.
	shipped := map[string]string{}
	for {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return w.streamErr(err, l, "reading a header")
		}
		w.members++
		if w.lim != nil && w.lim.MaxMembers > 0 && w.members > w.lim.MaxMembers {
			return &container.LimitError{Cap: "max-container-members", Value: int64(w.lim.MaxMembers),
				What: fmt.Sprintf("the image's layers hold more than %d entries", w.lim.MaxMembers)}
		}
		m := &container.Member{Size: -1, Mode: hdr.FileInfo().Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)}
		name, nameErr := container.CleanName(hdr.Name)
		if nameErr != nil && hdr.Typeflag == tar.TypeDir && strings.Trim(hdr.Name, "./") == "" && !strings.HasPrefix(hdr.Name, "/") {
			// "./", the layer's top directory.
			if err := w.skip(tr, l, hdr.Name); err != nil {
				return err
			}
			continue
		}
		if nameErr == nil && strings.Count(name, "/") >= maxDepth {
			nameErr = fmt.Errorf("%w: name %q has more than %d elements", container.ErrMember, hdr.Name, maxDepth)
		}
		if nameErr == nil {
			dir, base := "", name
			if i := strings.LastIndexByte(name, '/'); i >= 0 {
				dir, base = name[:i], name[i+1:]
			}
			switch {
			case base == opaqueMarker:
				if dir != "" {
					opaque = append(opaque, dir)
				} else {
					opaque = append(opaque, "") // the whole root: see below
				}
				if err := w.skip(tr, l, name); err != nil {
					return err
				}
				continue
			case strings.HasPrefix(base, whiteoutPrefix+whiteoutPrefix):
				// aufs metadata (.wh..wh.plnk, .wh..wh.aufs): no file
				if err := w.skip(tr, l, name); err != nil {
					return err
				}
				continue
			case strings.HasPrefix(base, whiteoutPrefix):
				target := base[len(whiteoutPrefix):]
				if dir != "" {
					target = dir + "/" + target
				}
				deleted = append(deleted, target)
				if err := w.skip(tr, l, name); err != nil {
					return err
				}
				continue
			}
			if w.rootOpaque || w.hidden(name) {
				// Not shipped: a layer above hides it. Its bytes still
				// count against the caps as they are decompressed.
				if err := w.skip(tr, l, name); err != nil {
					return err
				}
				continue
			}
			if _, dup := here[name]; dup {
				nameErr = fmt.Errorf("%w: %q is stored more than once in layer %s (tar keeps the later copy)", container.ErrMember, name, l.path)
			}
			here[name] = hdr.Typeflag == tar.TypeDir
		}
		m.Name = name
		if img.name != "" {
			m.Name = img.name + "/" + name
		}
		m.Problem = nameErr
		var aerr error
		if m.Attrs, aerr = container.PAXAttrs(hdr.PAXRecords); aerr != nil && m.Problem == nil {
			m.Problem = fmt.Errorf("%s: %w", m.Name, aerr)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if m.Problem == nil {
				if err := w.skip(tr, l, name); err != nil {
					return err
				}
				continue
			}
			m.Type = container.Other
		case tar.TypeReg:
			m.Type = container.Regular
			m.Size = hdr.Size
			if isSparse(hdr) && m.Problem == nil {
				m.Problem = fmt.Errorf("%w: %s is a sparse file", container.ErrMember, m.Name)
			}
		case tar.TypeSymlink:
			m.Type, m.Link = container.Symlink, hdr.Linkname
			if m.Problem == nil {
				m.Problem = fmt.Errorf("%w: %s is a symbolic link to %q", container.ErrMember, m.Name, hdr.Linkname)
				m.Link = rootedLink(img.name, name, hdr.Linkname)
			}
		case tar.TypeLink:
			m.Type = container.Hardlink
			if m.Problem != nil {
				break
			}
			target, err := container.CleanName(hdr.Linkname)
			bytesOf, ok := shipped[container.NameKey(target)]
			if err != nil || !ok {
				// Link stays empty: no member of the image has the bytes
				// this link ships, and the pipeline must not settle it
				// as a link to the file now under that name.
				m.Problem = fmt.Errorf("%w: %s is a hard link to %q, which is no file this layer ships before it: "+
					"an extractor links it to a lower layer's file, or to a copy this layer or a higher one replaces, "+
					"whose bytes csv does not judge", container.ErrMember, m.Name, hdr.Linkname)
				break
			}
			shipped[container.NameKey(name)] = bytesOf
			m.Link = bytesOf
			if img.name != "" {
				m.Link = img.name + "/" + bytesOf
			}
			m.Problem = fmt.Errorf("%w: %s is a hard link to %q (its bytes are judged under that name)", container.ErrMember, m.Name, m.Link)
		default:
			m.Type = container.Other
			if m.Problem == nil {
				m.Problem = fmt.Errorf("%w: %s has tar type %q, not a regular file", container.ErrMember, m.Name, hdr.Typeflag)
			}
		}
		if m.Type == container.Regular && m.Problem == nil {
			shipped[container.NameKey(name)] = name
		}
		if err := w.deliver(m, tr, l); err != nil {
			return err
		}
	}
	for n, isDir := range here {
		x := w.upper.at(n)
		x.seen, x.dir = true, isDir
	}
	for _, d := range deleted {
		w.upper.at(d).deleted = true
	}
	for _, o := range opaque {
		if o == "" {
			w.rootOpaque = true
		} else {
			w.upper.at(o).opaque = true
		}
	}
	return nil
}

// deliver yields m with the entry's bytes (nil with a Problem), then reads
// what the consumer left of them.
func (w *walker) deliver(m *container.Member, tr *tar.Reader, l layer) error {
	meter := &container.Meter{R: tr, Ctx: w.ctx, Lim: w.lim, Name: m.Name, Declared: m.Size, Format: "image",
		Compressed: func() int64 { return w.compressed }}
	if m.Type != container.Regular {
		meter.Declared = -1
	}
	var r io.Reader = meter
	if m.Problem != nil {
		r = nil
	}
	if err := w.yield(m, r); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, meter); err != nil {
		return w.streamErr(err, l, "reading member "+m.Name)
	}
	return nil
}

// skip reads an entry that is not yielded, counting its bytes against the
// caps.
func (w *walker) skip(tr *tar.Reader, l layer, name string) error {
	meter := &container.Meter{R: tr, Ctx: w.ctx, Lim: w.lim, Name: name + " (not shipped)", Declared: -1, Format: "image",
		Compressed: func() int64 { return w.compressed }}
	if _, err := io.Copy(io.Discard, meter); err != nil {
		return w.streamErr(err, l, "reading "+name)
	}
	return nil
}

func (w *walker) streamErr(err error, l layer, what string) error {
	if errors.Is(err, container.ErrLimit) || errors.Is(err, signing.ErrMalformed) || w.ctx.Err() != nil {
		return err
	}
	return &signing.MalformedError{Format: "image", Offset: -1, Reason: fmt.Sprintf("layer %s: %s: %v", l.path, what, err), Err: err}
}

// drainZeros reads r to its end, refusing any byte that is not zero.
func (w *walker) drainZeros(r io.Reader, blob string) error {
	meter := &container.Meter{R: r, Ctx: w.ctx, Lim: w.lim, Name: blob + " after its end-of-archive marker", Declared: -1, Format: "image",
		Compressed: func() int64 { return w.compressed }}
	buf := make([]byte, 32<<10)
	for {
		n, err := meter.Read(buf)
		for _, c := range buf[:n] {
			if c != 0 {
				return malformed("layer %s holds bytes other than zeros after its end-of-archive marker", blob)
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return w.streamErr(err, layer{path: blob}, "reading after the end-of-archive marker")
		}
	}
}

// rootedLink is a symbolic link's target as the image's root filesystem
// resolves it, from the root: "/" and the path, ".." stopping at the root
// as it does in a container, and the image's name before the path when
// members carry it (so that the pipeline, which ties links to members by
// name, finds the file of this image, not of another).
func rootedLink(image, name, link string) string {
	if link == "" {
		return link
	}
	p := path.Clean("/" + link)
	if !strings.HasPrefix(link, "/") {
		p = path.Clean("/" + path.Join(path.Dir(name), link))
	}
	if image != "" {
		p = "/" + image + p
	}
	return p
}
