// Package oci reads container images stored as one tar file, docker save
// tarballs and OCI image layout archives, or as an OCI image layout
// directory ([Dir]), as containers whose members are
// the files of each image's root filesystem: every layer is read, its
// whiteouts applied, and each file the image ships is yielded once, named
// by its path in the root filesystem ("usr/bin/x").
//
// # Formats
//
// An OCI image layout archive holds oci-layout, index.json and
// blobs/<alg>/<hex>; index.json lists image manifests (or nested indexes,
// multi-platform images), each a config and layers. A docker save tarball
// holds manifest.json, listing per image its config file, tags and layer
// files (<id>/layer.tar before Docker 25, blobs/sha256/<hex> since, when
// the tarball is also an OCI layout). manifest.json is read when present
// (Docker reads it), index.json otherwise; when both are present (Docker
// 25), index.json's images must make the same root filesystems (the same
// diff_ids) as manifest.json's, since the OCI tools read index.json.
//
// # Order and names
//
// Images in the order their manifest lists them; an image's layers from
// the top (last) down; a layer's entries in its tar order. A file is
// yielded from the highest layer that has it; lower layers' copies, files
// a higher layer deletes (.wh.<name>) and files under a directory a higher
// layer makes opaque (.wh..wh..opq) or replaces with a non-directory are
// not shipped and not yielded. With one image, members are named by their
// path; with several, by the image's name, then the path:
// "docker.io/library/busybox:latest/bin/busybox". An image's name is its
// first tag (docker's RepoTags, the OCI annotations
// io.containerd.image.name or org.opencontainers.image.ref.name), or its
// manifest's digest ("sha256:<hex>") when it has none or shares it.
//
// # What is checked
//
// Every blob's digest, as it is read: a manifest's or config's (read whole,
// at most [limits.MaxImageManifest] bytes) before it is parsed, a layer's
// as it streams (a mismatch is Walk's error, naming the blob, after the
// layer's members were yielded), the uncompressed layer's against the
// config's rootfs.diff_ids, and each descriptor's size. JSON is parsed
// strictly (no key twice in an object, nothing after the document). Layer
// compression is read from the media type (tar, tar+gzip, tar+zstd, and
// Docker's equivalents) and must agree with the layer's first bytes; docker
// save's legacy layers, which have no media type, by those bytes.
//
// # Security
//
// Nothing is trusted: names are cleaned (container.CleanName), unsafe ones
// are members with a Problem; symbolic and hard links, devices and sparse
// files in layers are members with a Problem; a blob a manifest names that
// the tarball lacks (a foreign layer) is an error, since its files cannot
// be judged. Image signatures (cosign, notation) are not read.
package oci

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/signing"
)

// Reader reads docker save tarballs and OCI image layout archives. Its
// zero value is ready to use.
type Reader struct{}

var _ container.Reader = Reader{}

// Kind is "oci" (docker save tarballs included).
func (Reader) Kind() container.Kind { return "oci" }

// Sniff recognises an uncompressed tar (a header block whose checksum
// holds) whose entries within head include a file an image archive has at
// its top: oci-layout, index.json, manifest.json, repositories, a blobs/
// directory, or docker save's legacy <64 hex>/, <64 hex>.json and
// <64 hex>.tar names (skopeo's docker-archive starts with a layer).
// The name is not read. A tar of other files is left to the tar reader.
func (Reader) Sniff(head []byte, _ string) bool {
	for off := 0; off+512 <= len(head); {
		h := head[off : off+512]
		if !tarChecksumOK(h) {
			return false
		}
		name := cstring(h[:100])
		if bytes.Equal(h[257:262], []byte("ustar")) && h[345] != 0 {
			name = cstring(h[345:500]) + "/" + name
		}
		if imageTopName(strings.TrimPrefix(name, "./")) {
			return true
		}
		size, ok := octal(h[124:136])
		if !ok || size > int64(len(head)) {
			return false
		}
		off += 512 + int((size+511)/512*512)
	}
	return false
}

func imageTopName(n string) bool {
	switch n {
	case "oci-layout", "index.json", "manifest.json", "repositories", "blobs", "blobs/":
		return true
	}
	if strings.HasPrefix(n, "blobs/sha256/") {
		return true
	}
	first, _, _ := strings.Cut(n, "/")
	if b, ok := strings.CutSuffix(first, ".json"); ok {
		first = b
	} else {
		first = strings.TrimSuffix(first, ".tar")
	}
	return len(first) == 64 && isHex(first)
}

func isHex(s string) bool {
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func octal(b []byte) (int64, bool) {
	s := strings.Trim(cstring(b), " ")
	if s == "" {
		return 0, true
	}
	var v int64
	for _, c := range []byte(s) {
		if c < '0' || c > '7' || v > 1<<40 {
			return 0, false
		}
		v = v*8 + int64(c-'0')
	}
	return v, true
}

func tarChecksumOK(h []byte) bool {
	want, ok := octal(h[148:156])
	if !ok {
		return false
	}
	var sum int64
	for i, c := range h {
		if i >= 148 && i < 156 {
			c = ' '
		}
		sum += int64(c)
	}
	return sum == want && sum != 8*' '
}

func malformed(format string, args ...any) error {
	return &signing.MalformedError{Format: "image", Offset: -1, Reason: fmt.Sprintf(format, args...)}
}

// file is a regular file of the outer tar.
type file struct{ off, size int64 }

// archive is the outer tar: its files by cleaned name, its symbolic links.
type archive struct {
	src   io.ReaderAt
	files map[string]file
	links map[string]string
	// what names it in errors: "image tarball", "image layout directory".
	what string
	// used marks the files and links opened: once the images are read,
	// a file of the tarball none of them uses is an error (see unused).
	used map[string]bool
}

func scan(src io.ReaderAt, size int64) (*archive, error) {
	a := &archive{src: src, what: "image tarball", files: map[string]file{}, links: map[string]string{}, used: map[string]bool{}}
	sr := io.NewSectionReader(src, 0, size)
	tr := tar.NewReader(sr)
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return a, nil
		}
		if err != nil {
			return nil, &signing.MalformedError{Format: "image", Offset: -1, Reason: "reading the image tarball: " + err.Error(), Err: err}
		}
		if n >= limits.MaxImageBlobs {
			return nil, &container.LimitError{Cap: "MaxImageBlobs", Value: limits.MaxImageBlobs,
				What: fmt.Sprintf("the image tarball holds more than %d entries", limits.MaxImageBlobs)}
		}
		name, err := container.CleanName(hdr.Name)
		if err != nil {
			if hdr.Typeflag == tar.TypeDir && strings.Trim(hdr.Name, "./") == "" {
				continue // "./", the layout's top
			}
			return nil, malformed("image tarball entry: %v", err)
		}
		_, dupFile := a.files[name]
		_, dupLink := a.links[name]
		if dupFile || dupLink {
			return nil, malformed("image tarball entry %s is stored twice", name)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
		case tar.TypeReg:
			if isSparse(hdr) {
				return nil, malformed("image tarball entry %s is a sparse file", name)
			}
			off, err := sr.Seek(0, io.SeekCurrent)
			if err != nil {
				return nil, err
			}
			a.files[name] = file{off: off, size: hdr.Size}
		case tar.TypeSymlink:
			a.links[name] = hdr.Linkname
		default:
			return nil, malformed("image tarball entry %s has type %q, not a file, directory or symbolic link", name, hdr.Typeflag)
		}
	}
}

func isSparse(h *tar.Header) bool {
	if h.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// open returns the file name (following symbolic links within the
// tarball, as docker save's legacy layers use them) as a section of src.
func (a *archive) open(name string) (*io.SectionReader, bool) {
	for range 8 {
		a.used[name] = true
		if f, ok := a.files[name]; ok {
			return io.NewSectionReader(a.src, f.off, f.size), true
		}
		t, ok := a.links[name]
		if !ok || strings.HasPrefix(t, "/") {
			return nil, false
		}
		c, err := container.CleanName(path.Join(path.Dir(name), t))
		if err != nil {
			return nil, false
		}
		name = c
	}
	return nil, false
}

// digest is a parsed "alg:hex".
type digest struct{ alg, hex string }

func (d digest) String() string { return d.alg + ":" + d.hex }

func parseDigest(s string) (digest, error) {
	alg, h, ok := strings.Cut(s, ":")
	want := map[string]int{"sha256": 64, "sha512": 128}[alg]
	if !ok || want == 0 || len(h) != want || !isHex(h) {
		return digest{}, malformed("digest %q is not sha256:<64 hex> or sha512:<128 hex>", s)
	}
	return digest{alg, h}, nil
}

func (d digest) hash() hash.Hash {
	if d.alg == "sha512" {
		return sha512.New()
	}
	return sha256.New()
}

// blobDigest is the digest a blob's path names (blobs/<alg>/<hex>, or a
// legacy "<hex>.json" config), if it names one.
func blobDigest(p string) (digest, bool) {
	if rest, ok := strings.CutPrefix(p, "blobs/"); ok {
		alg, h, ok := strings.Cut(rest, "/")
		if d, err := parseDigest(alg + ":" + h); ok && err == nil {
			return d, true
		}
	}
	if h, ok := strings.CutSuffix(p, ".json"); ok && len(h) == 64 && isHex(h) {
		return digest{"sha256", h}, true
	}
	return digest{}, false
}

func blobPath(d digest) string { return "blobs/" + d.alg + "/" + d.hex }

// readJSON reads the small document at p, checks it against the digests
// given (its descriptor's, its path's) and decodes it strictly into v.
func (a *archive) readJSON(p string, v any, want ...digest) error {
	r, ok := a.open(p)
	if !ok {
		return malformed("the %s has no %s", a.what, p)
	}
	if r.Size() > limits.MaxImageManifest {
		return &container.LimitError{Cap: "MaxImageManifest", Value: limits.MaxImageManifest,
			What: fmt.Sprintf("%s's %d bytes", p, r.Size())}
	}
	b := make([]byte, r.Size())
	if _, err := io.ReadFull(r, b); err != nil {
		return malformed("reading %s: %v", p, err)
	}
	if d, ok := blobDigest(p); ok {
		want = append(want, d)
	}
	for _, d := range want {
		h := d.hash()
		h.Write(b)
		if got := hex.EncodeToString(h.Sum(nil)); got != d.hex {
			return malformed("blob %s has digest %s:%s, not %s", p, d.alg, got, d)
		}
	}
	if err := decodeStrict(b, v); err != nil {
		return malformed("%s: %v", p, err)
	}
	return nil
}

// image is one image to walk.
type image struct {
	name   string // prefix, "" with one image
	ref    string // its own name (tag or digest)
	digest string // manifest (or config) digest, for names that collide
	layers []layer
}

type layer struct {
	path   string
	want   []digest // of the blob as stored
	diffID digest   // of the uncompressed tar; alg "" when unknown
	comp   string   // "gzip", "zstd", "" (none), "?" (by magic)
	size   int64    // -1: not declared
}

// Media types csv reads.
const (
	mtIndex          = "application/vnd.oci.image.index.v1+json"
	mtManifest       = "application/vnd.oci.image.manifest.v1+json"
	mtDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	mtDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
)

func layerCompression(mt string) (string, bool) {
	// Non-distributable (foreign) layers are read like the others when
	// the tarball holds their blob (docker save leaves it out, and a
	// missing blob is an error).
	switch mt {
	case "application/vnd.oci.image.layer.v1.tar", "application/vnd.docker.image.rootfs.diff.tar",
		"application/vnd.oci.image.layer.nondistributable.v1.tar":
		return "", true
	case "application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.docker.image.rootfs.diff.tar.gzip",
		"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip":
		return "gzip", true
	case "application/vnd.oci.image.layer.v1.tar+zstd", "application/vnd.docker.image.rootfs.diff.tar.zstd",
		"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd":
		return "zstd", true
	}
	return "", false
}

func (a *archive) images() ([]*image, error) {
	var imgs []*image
	if _, ok := a.open("manifest.json"); ok {
		var entries []dockerEntry
		if err := a.readJSON("manifest.json", &entries); err != nil {
			return nil, err
		}
		if len(entries) == 0 {
			return nil, malformed("manifest.json lists no image")
		}
		for _, e := range entries {
			img := &image{digest: e.Config}
			if d, ok := blobDigest(e.Config); ok {
				img.digest = d.String()
			}
			img.ref = img.digest
			if len(e.RepoTags) > 0 {
				img.ref = e.RepoTags[0]
			}
			var cfg imageConfig
			if err := a.readJSON(e.Config, &cfg); err != nil {
				return nil, err
			}
			if len(e.Layers) > limits.MaxImageLayers {
				return nil, &container.LimitError{Cap: "MaxImageLayers", Value: limits.MaxImageLayers,
					What: fmt.Sprintf("image %s's %d layers", img.ref, len(e.Layers))}
			}
			if len(cfg.RootFS.DiffIDs) != len(e.Layers) {
				return nil, malformed("image %s lists %d layers, its config %d diff_ids", img.ref, len(e.Layers), len(cfg.RootFS.DiffIDs))
			}
			for i, p := range e.Layers {
				l := layer{path: p, comp: "?", size: -1}
				if d, ok := blobDigest(p); ok {
					l.want = append(l.want, d)
				}
				d, err := parseDigest(cfg.RootFS.DiffIDs[i])
				if err != nil {
					return nil, err
				}
				l.diffID = d
				img.layers = append(img.layers, l)
			}
			imgs = append(imgs, img)
		}
		// Docker 25 writes index.json too, and the tools that read an
		// OCI layout (skopeo, podman, umoci, containerd's import) read
		// that: both must describe the same root filesystems, or what
		// one tool lays down is not what csv judged.
		if _, ok := a.open("index.json"); ok {
			oci, err := a.layout()
			if err != nil {
				return nil, fmt.Errorf("index.json, beside manifest.json: %w", err)
			}
			if err := sameImages(imgs, oci); err != nil {
				return nil, err
			}
		}
	} else if _, ok := a.open("index.json"); ok {
		var err error
		if imgs, err = a.layout(); err != nil {
			return nil, err
		}
	} else {
		return nil, malformed("the %s has neither manifest.json nor index.json", a.what)
	}
	// Names: the image's own when there are several and it is unique.
	if len(imgs) > 1 {
		count := map[string]int{}
		for _, img := range imgs {
			count[img.ref]++
		}
		seen := map[string]bool{}
		for _, img := range imgs {
			n := img.ref
			if c, err := container.CleanName(n); err != nil || c != n || count[n] > 1 {
				n = img.digest
			}
			if seen[n] {
				return nil, malformed("the %s lists image %s twice", a.what, n)
			}
			seen[n] = true
			img.name = n
		}
		// No name may be another's first elements ("ex/a" and
		// "ex/a/usr"): a member of one would read as a member of the
		// other ("ex/a/usr/bin/x"), for the reports, the policy's path
		// globs and the links csv ties to files by name.
		for _, img := range imgs {
			for i := range len(img.name) {
				if img.name[i] == '/' && seen[img.name[:i]] {
					return nil, malformed("the %s names images %s and %s: the members of one would read as members of the other", a.what, img.name[:i], img.name)
				}
			}
		}
	}
	return imgs, nil
}

// layout reads an OCI image layout's oci-layout and index.json.
func (a *archive) layout() ([]*image, error) {
	if _, ok := a.open("oci-layout"); !ok {
		return nil, malformed("the %s has index.json but no oci-layout", a.what)
	}
	var layout struct {
		Version string `json:"imageLayoutVersion"`
	}
	if err := a.readJSON("oci-layout", &layout); err != nil {
		return nil, err
	}
	if layout.Version != "1.0.0" {
		return nil, malformed("oci-layout's imageLayoutVersion is %q, not 1.0.0", layout.Version)
	}
	imgs, err := a.index("index.json", nil, 0)
	if err != nil {
		return nil, err
	}
	if len(imgs) == 0 {
		return nil, malformed("index.json lists no image")
	}
	return imgs, nil
}

// rootfs names the root filesystem an image's layers make: their diff_ids
// in order (each checked against the layer's bytes as it is read).
func (img *image) rootfs() string {
	var b strings.Builder
	for _, l := range img.layers {
		b.WriteString(l.diffID.String())
		b.WriteByte(' ')
	}
	return b.String()
}

// sameImages checks that manifest.json's images (docker) and index.json's
// (oci) make the same root filesystems, each tarball's images as a set: a
// tag may list an image again.
func sameImages(docker, oci []*image) error {
	set := func(imgs []*image) map[string]string {
		m := map[string]string{}
		for _, img := range imgs {
			m[img.rootfs()] = img.ref
		}
		return m
	}
	d, o := set(docker), set(oci)
	for k, ref := range d {
		if _, ok := o[k]; !ok {
			return malformed("manifest.json's image %s is not in index.json: Docker and the OCI tools (skopeo, podman, containerd) would load different images", ref)
		}
	}
	for k, ref := range o {
		if _, ok := d[k]; !ok {
			return malformed("index.json's image %s is not in manifest.json: Docker and the OCI tools (skopeo, podman, containerd) would load different images", ref)
		}
	}
	return nil
}

// index reads the OCI index at p (index.json, or a blob) and the images
// its manifests describe, nested indexes included (up to a depth of 4).
func (a *archive) index(p string, want []digest, depth int) ([]*image, error) {
	if depth > 4 {
		return nil, malformed("image indexes nest deeper than 4")
	}
	var idx index
	if err := a.readJSON(p, &idx, want...); err != nil {
		return nil, err
	}
	if idx.SchemaVersion != 2 {
		return nil, malformed("%s's schemaVersion is %d, not 2", p, idx.SchemaVersion)
	}
	var imgs []*image
	for _, d := range idx.Manifests {
		dg, err := parseDigest(d.Digest)
		if err != nil {
			return nil, err
		}
		bp := blobPath(dg)
		if r, ok := a.open(bp); ok && r.Size() != d.Size {
			return nil, malformed("blob %s is %d bytes, its descriptor in %s says %d", bp, r.Size(), p, d.Size)
		}
		switch d.MediaType {
		case mtIndex, mtDockerList:
			sub, err := a.index(bp, []digest{dg}, depth+1)
			if err != nil {
				return nil, err
			}
			imgs = append(imgs, sub...)
		case mtManifest, mtDockerManifest:
			img, err := a.manifest(bp, dg, d)
			if err != nil {
				return nil, err
			}
			imgs = append(imgs, img)
		default:
			return nil, malformed("%s lists %s of media type %q, neither an image manifest nor an index", p, dg, d.MediaType)
		}
		if len(imgs) > limits.MaxImageLayers {
			return nil, &container.LimitError{Cap: "MaxImageLayers", Value: limits.MaxImageLayers,
				What: fmt.Sprintf("%s lists more than %d images", p, limits.MaxImageLayers)}
		}
	}
	return imgs, nil
}

func (a *archive) manifest(p string, dg digest, d descriptor) (*image, error) {
	var m manifest
	if err := a.readJSON(p, &m, dg); err != nil {
		return nil, err
	}
	if m.SchemaVersion != 2 {
		return nil, malformed("manifest %s's schemaVersion is %d, not 2", dg, m.SchemaVersion)
	}
	if m.MediaType != "" && m.MediaType != d.MediaType {
		return nil, malformed("manifest %s says media type %q, its descriptor %q", dg, m.MediaType, d.MediaType)
	}
	img := &image{digest: dg.String(), ref: dg.String()}
	for _, k := range []string{"io.containerd.image.name", "org.opencontainers.image.ref.name"} {
		if v := d.Annotations[k]; v != "" {
			img.ref = v
			break
		}
	}
	if d.Platform != nil && d.Platform.OS != "" {
		img.ref += "/" + d.Platform.OS + "/" + d.Platform.Architecture
		if d.Platform.Variant != "" {
			img.ref += "/" + d.Platform.Variant
		}
	}
	cd, err := parseDigest(m.Config.Digest)
	if err != nil {
		return nil, err
	}
	var cfg imageConfig
	if err := a.readJSON(blobPath(cd), &cfg, cd); err != nil {
		return nil, err
	}
	if len(m.Layers) > limits.MaxImageLayers {
		return nil, &container.LimitError{Cap: "MaxImageLayers", Value: limits.MaxImageLayers,
			What: fmt.Sprintf("image %s's %d layers", img.ref, len(m.Layers))}
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, malformed("image %s lists %d layers, its config %d diff_ids", img.ref, len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	for i, ld := range m.Layers {
		ldg, err := parseDigest(ld.Digest)
		if err != nil {
			return nil, err
		}
		comp, ok := layerCompression(ld.MediaType)
		if !ok {
			return nil, malformed("image %s's layer %s has media type %q, which csv does not read", img.ref, ldg, ld.MediaType)
		}
		diff, err := parseDigest(cfg.RootFS.DiffIDs[i])
		if err != nil {
			return nil, err
		}
		img.layers = append(img.layers, layer{path: blobPath(ldg), want: []digest{ldg}, diffID: diff, comp: comp, size: ld.Size})
	}
	return img, nil
}

// Walk yields the files every image in the tarball ships (see the package
// documentation for the order and the names). src is the tarball, or an
// image layout directory opened with [OpenDir].
func (Reader) Walk(ctx context.Context, src io.ReaderAt, size int64, name string, lim *container.Limits, yield func(*container.Member, io.Reader) error) error {
	var a *archive
	var err error
	if d, ok := src.(*Dir); ok {
		a, err = d.archive()
	} else {
		a, err = scan(src, size)
	}
	if err != nil {
		return err
	}
	imgs, err := a.images()
	if err != nil {
		return err
	}
	w := &walker{ctx: ctx, lim: lim, yield: yield}
	for _, img := range imgs {
		if err := w.image(a, img); err != nil {
			return err
		}
	}
	return a.unused()
}

// unused returns an error about a file of the tarball that no image uses,
// but for the files docker save writes beside the images (repositories; a
// legacy layer's <id>/json and <id>/VERSION): tar -x lays it down, docker
// load and the OCI tools ignore it, and csv, reading the tarball as
// images, would judge it nowhere. (A symbolic link ships no bytes: its
// target, if a file of the tarball, is checked as one.)
func (a *archive) unused() error {
	var names []string
	for n := range a.files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if a.used[n] {
			continue
		}
		// Those docker save writes must be what it writes there: JSON,
		// or VERSION's "1.0" (not a binary named json).
		dir, base, _ := strings.Cut(n, "/")
		legacy := len(dir) == 64 && isHex(dir) && (base == "json" || base == "VERSION")
		if n == "repositories" || legacy {
			f := a.files[n]
			if f.size > limits.MaxImageManifest {
				return malformed("the %s's %s is %d bytes, more than docker save writes there", a.what, n, f.size)
			}
			b := make([]byte, f.size)
			if _, err := a.src.ReadAt(b, f.off); err != nil && !(errors.Is(err, io.EOF) && f.size == 0) {
				return malformed("reading %s: %v", n, err)
			}
			if base == "VERSION" && strings.TrimSpace(string(b)) == "1.0" || base != "VERSION" && checkJSON(b) == nil {
				continue
			}
			return malformed("the %s's %s is not what docker save writes there (JSON, or \"1.0\" in VERSION)", a.what, n)
		}
		return malformed("the %s holds %s, which no image uses: tar -x would lay it down, docker load ignores it, and csv judges the images only", a.what, n)
	}
	return nil
}

type walker struct {
	ctx        context.Context
	lim        *container.Limits
	yield      func(*container.Member, io.Reader) error
	members    int
	compressed int64 // bytes of layer blobs read so far

	// Per image, what the layers above the one being read hold: a tree
	// of path elements, so that looking a name and its ancestors up costs
	// the name's length, not its length times its depth.
	upper *node
	// rootOpaque: a layer above has .wh..wh..opq at its top, hiding
	// every lower layer.
	rootOpaque bool
}

func (w *walker) image(a *archive, img *image) error {
	w.upper, w.rootOpaque = &node{}, false
	for i := len(img.layers) - 1; i >= 0; i-- {
		if err := w.layer(a, img, img.layers[i]); err != nil {
			return err
		}
	}
	return nil
}

// countReader counts the bytes read through it into *n.
type countReader struct {
	r io.Reader
	n *int64
}

func (c countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	*c.n += int64(n)
	return n, err
}

func (w *walker) layer(a *archive, img *image, l layer) error {
	r, ok := a.open(l.path)
	if !ok {
		return malformed("image %s's layer %s is not in the %s (a foreign layer's files cannot be judged)", img.ref, l.path, a.what)
	}
	if l.size >= 0 && r.Size() != l.size {
		return malformed("layer %s is %d bytes, its descriptor says %d", l.path, r.Size(), l.size)
	}
	var stored []hash.Hash
	var ws []io.Writer
	for _, d := range l.want {
		h := d.hash()
		stored = append(stored, h)
		ws = append(ws, h)
	}
	var raw io.Reader = countReader{r, &w.compressed}
	if len(ws) > 0 {
		raw = io.TeeReader(raw, io.MultiWriter(ws...))
	}
	rawBuf := bufio.NewReaderSize(raw, 64<<10)
	magic, _ := rawBuf.Peek(4)
	comp := l.comp
	byMagic := ""
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		byMagic = "gzip"
	case bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		byMagic = "zstd"
	}
	if comp == "?" {
		comp = byMagic
	} else if comp != byMagic {
		return malformed("layer %s's media type says %s, its bytes %s", l.path, nameComp(comp), nameComp(byMagic))
	}
	var plain io.Reader = rawBuf
	switch comp {
	case "gzip":
		z, err := gzip.NewReader(rawBuf)
		if err != nil {
			return malformed("layer %s: %v", l.path, err)
		}
		defer z.Close()
		plain = z
	case "zstd":
		z, err := zstd.NewReader(rawBuf, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(128<<20))
		if err != nil {
			return malformed("layer %s: %v", l.path, err)
		}
		defer z.Close()
		plain = z
	}
	var diff hash.Hash
	// An uncompressed layer's diff_id is its blob's digest: the hash of
	// the stored bytes checks both.
	sameAsBlob := -1
	for i, d := range l.want {
		if comp == "" && d.alg == l.diffID.alg {
			sameAsBlob = i
		}
	}
	if l.diffID.alg != "" && sameAsBlob < 0 {
		diff = l.diffID.hash()
		plain = io.TeeReader(plain, diff)
	}
	pb := bufio.NewReaderSize(plain, 64<<10)
	if err := w.entries(img, l, tar.NewReader(pb)); err != nil {
		return err
	}
	// What follows the end-of-archive marker is read for the digests and
	// the decompressor's own checks; it must be zeros (GNU tar
	// --ignore-zeros would read anything else as more entries).
	if err := w.drainZeros(pb, l.path); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, rawBuf); err != nil {
		return malformed("reading layer %s: %v", l.path, err)
	}
	for i, h := range stored {
		if got := hex.EncodeToString(h.Sum(nil)); got != l.want[i].hex {
			return malformed("blob %s has digest %s:%s, not %s", l.path, l.want[i].alg, got, l.want[i])
		}
	}
	if sameAsBlob >= 0 {
		diff = stored[sameAsBlob]
	}
	if diff != nil {
		if got := hex.EncodeToString(diff.Sum(nil)); got != l.diffID.hex {
			return malformed("layer %s decompresses to digest %s:%s, not its config's diff_id %s", l.path, l.diffID.alg, got, l.diffID)
		}
	}
	return nil
}

func nameComp(c string) string {
	if c == "" {
		return "uncompressed"
	}
	return c
}
