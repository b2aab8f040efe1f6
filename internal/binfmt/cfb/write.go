package cfb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf16"
)

// Node is an entry of a compound file to write: a storage (with Children)
// or a stream (with its content from Open, Size bytes).
type Node struct {
	Name      string
	Type      uint8 // TypeRoot, TypeStorage or TypeStream
	CLSID     [16]byte
	StateBits uint32
	Created   [8]byte
	Modified  [8]byte
	Size      int64
	// Open returns the stream's content (exactly Size bytes).
	Open     func() (io.Reader, error)
	Children []*Node
}

// Tree returns the entries of f as Nodes to write: every storage and
// stream with its metadata as stored and its content read from f.
func (f *File) Tree() *Node {
	var node func(i int) *Node
	node = func(i int) *Node {
		e := &f.Entries[i]
		n := &Node{Name: e.Name, Type: e.Type, CLSID: e.CLSID, StateBits: e.StateBits, Created: e.Created, Modified: e.Modified}
		if e.Type == TypeStream {
			n.Size = e.Size
			n.Open = func() (io.Reader, error) { return f.Open(i) }
		}
		for _, c := range e.Children {
			n.Children = append(n.Children, node(c))
		}
		return n
	}
	return node(0)
}

// treeLess is the order of a storage's red-black tree: shorter names
// first, then by the upper-cased UTF-16 code units ([MS-CFB] 2.6.4).
func treeLess(a, b *Node) int {
	ua, ub := utf16.Encode([]rune(strings.ToUpper(a.Name))), utf16.Encode([]rune(strings.ToUpper(b.Name)))
	if len(ua) != len(ub) {
		return len(ua) - len(ub)
	}
	return slices.Compare(ua, ub)
}

// Write writes the compound file whose root is root to w, with sectors of
// sectorSize bytes (512: version 3, or 4096: version 4): the streams'
// contents, then the mini stream, the mini FAT, the directory (each
// storage's children a balanced tree, every node black), the FAT and the
// DIFAT. It returns the number of bytes written.
func Write(w io.Writer, root *Node, sectorSize int) (int64, error) {
	if sectorSize != 512 && sectorSize != 4096 {
		return 0, fmt.Errorf("cfb: sector size %d", sectorSize)
	}
	ss := int64(sectorSize)
	per := ss / 4
	// Directory ids in pre-order; children sorted for their trees.
	var nodes []*Node
	var number func(n *Node) error
	number = func(n *Node) error {
		if u := utf16.Encode([]rune(n.Name)); len(u) > 31 {
			return fmt.Errorf("cfb: entry name %+q is longer than 31 UTF-16 units", n.Name)
		}
		if len(nodes) >= 1<<24 {
			return errors.New("cfb: too many entries")
		}
		nodes = append(nodes, n)
		slices.SortFunc(n.Children, treeLess)
		for i := 1; i < len(n.Children); i++ {
			if treeLess(n.Children[i-1], n.Children[i]) == 0 {
				return fmt.Errorf("cfb: two entries named %+q", n.Children[i].Name)
			}
		}
		for _, c := range n.Children {
			if err := number(c); err != nil {
				return err
			}
		}
		return nil
	}
	if root.Type != TypeRoot {
		return 0, errors.New("cfb: the root node is not a root")
	}
	if err := number(root); err != nil {
		return 0, err
	}
	id := make(map[*Node]uint32, len(nodes))
	for i, n := range nodes {
		id[n] = uint32(i)
	}
	// Layout.
	start := make(map[*Node]uint32, len(nodes))
	var fat []uint32
	var sect uint32
	chain := func(n int64) uint32 { // n sectors from sect on
		if n == 0 {
			return endOfChain
		}
		first := sect
		for i := int64(0); i < n; i++ {
			if i == n-1 {
				fat = append(fat, endOfChain)
			} else {
				fat = append(fat, sect+1)
			}
			sect++
		}
		return first
	}
	var minifat []uint32
	var miniLen int64
	for _, n := range nodes {
		if n.Type != TypeStream {
			continue
		}
		if n.Size >= miniCutoff {
			start[n] = chain((n.Size + ss - 1) / ss)
			continue
		}
		if n.Size == 0 {
			start[n] = endOfChain
			continue
		}
		k := (n.Size + miniSectorSize - 1) / miniSectorSize
		first := uint32(miniLen / miniSectorSize)
		for i := int64(0); i < k; i++ {
			if i == k-1 {
				minifat = append(minifat, endOfChain)
			} else {
				minifat = append(minifat, first+uint32(i)+1)
			}
		}
		start[n] = first
		miniLen += k * miniSectorSize
	}
	miniStart := chain((miniLen + ss - 1) / ss)
	minifatSectors := (int64(len(minifat))*4 + ss - 1) / ss
	minifatStart := chain(minifatSectors)
	dirSectors := (int64(len(nodes))*direntSize + ss - 1) / ss
	dirStart := chain(dirSectors)
	// The FAT and DIFAT sectors cover themselves.
	var nfat, ndifat int64
	for {
		total := int64(sect) + nfat + ndifat
		f := (total + per - 1) / per
		d := int64(0)
		if f > headerDIFAT {
			d = (f - headerDIFAT + per - 2) / (per - 1)
		}
		if f == nfat && d == ndifat {
			break
		}
		nfat, ndifat = f, d
	}
	fatStart := sect
	for range nfat {
		fat = append(fat, fatSect)
		sect++
	}
	difatStart := sect
	for range ndifat {
		fat = append(fat, difSect)
		sect++
	}
	for int64(len(fat)) < nfat*per {
		fat = append(fat, freeSect)
	}

	// Write.
	cw := &countWriter{w: w}
	le := binary.LittleEndian
	var h [headerSize]byte
	copy(h[:], Magic[:])
	le.PutUint16(h[0x18:], 0x3e)
	if ss == 512 {
		le.PutUint16(h[0x1a:], 3)
		le.PutUint16(h[0x1e:], 9)
	} else {
		le.PutUint16(h[0x1a:], 4)
		le.PutUint16(h[0x1e:], 12)
		le.PutUint32(h[0x28:], uint32(dirSectors))
	}
	le.PutUint16(h[0x1c:], 0xfffe)
	le.PutUint16(h[0x20:], 6)
	le.PutUint32(h[0x2c:], uint32(nfat))
	le.PutUint32(h[0x30:], dirStart)
	le.PutUint32(h[0x38:], miniCutoff)
	le.PutUint32(h[0x3c:], minifatStart)
	le.PutUint32(h[0x40:], uint32(minifatSectors))
	if ndifat > 0 {
		le.PutUint32(h[0x44:], difatStart)
	} else {
		le.PutUint32(h[0x44:], endOfChain)
	}
	le.PutUint32(h[0x48:], uint32(ndifat))
	for i := range headerDIFAT {
		v := uint32(freeSect)
		if int64(i) < nfat {
			v = fatStart + uint32(i)
		}
		le.PutUint32(h[0x4c+4*i:], v)
	}
	if _, err := cw.Write(h[:]); err != nil {
		return cw.n, err
	}
	if err := cw.pad(ss); err != nil {
		return cw.n, err
	}
	copyStream := func(n *Node) error {
		r, err := n.Open()
		if err != nil {
			return err
		}
		m, err := io.Copy(cw, io.LimitReader(r, n.Size))
		if err != nil {
			return err
		}
		if m != n.Size {
			return fmt.Errorf("cfb: stream %+q: %d of its %d bytes", n.Name, m, n.Size)
		}
		return nil
	}
	for _, n := range nodes {
		if n.Type == TypeStream && n.Size >= miniCutoff {
			if err := copyStream(n); err != nil {
				return cw.n, err
			}
			if err := cw.pad(ss); err != nil {
				return cw.n, err
			}
		}
	}
	for _, n := range nodes {
		if n.Type == TypeStream && n.Size > 0 && n.Size < miniCutoff {
			if err := copyStream(n); err != nil {
				return cw.n, err
			}
			if err := cw.pad(miniSectorSize); err != nil {
				return cw.n, err
			}
		}
	}
	if err := cw.pad(ss); err != nil {
		return cw.n, err
	}
	u32s := func(vs []uint32, fill uint32) error {
		b := make([]byte, 4*len(vs))
		for i, v := range vs {
			le.PutUint32(b[4*i:], v)
		}
		if _, err := cw.Write(b); err != nil {
			return err
		}
		for cw.n%ss != 0 {
			var f [4]byte
			le.PutUint32(f[:], fill)
			if _, err := cw.Write(f[:]); err != nil {
				return err
			}
		}
		return nil
	}
	if err := u32s(minifat, freeSect); err != nil {
		return cw.n, err
	}
	// The directory: each storage's children as a balanced tree.
	left := make(map[*Node]uint32, len(nodes))
	right := make(map[*Node]uint32, len(nodes))
	child := make(map[*Node]uint32, len(nodes))
	var tree func(cs []*Node) uint32
	tree = func(cs []*Node) uint32 {
		if len(cs) == 0 {
			return noStream
		}
		m := len(cs) / 2
		left[cs[m]] = tree(cs[:m])
		right[cs[m]] = tree(cs[m+1:])
		return id[cs[m]]
	}
	for _, n := range nodes {
		child[n] = tree(n.Children)
	}
	for _, n := range nodes {
		var e [direntSize]byte
		u := utf16.Encode([]rune(n.Name))
		for i, c := range u {
			le.PutUint16(e[2*i:], c)
		}
		le.PutUint16(e[0x40:], uint16(2*len(u)+2))
		e[0x42] = n.Type
		e[0x43] = 1 // black
		l, r, c := uint32(noStream), uint32(noStream), uint32(noStream)
		if n != root {
			l, r = left[n], right[n]
		}
		if n.Type != TypeStream {
			c = child[n]
		}
		le.PutUint32(e[0x44:], l)
		le.PutUint32(e[0x48:], r)
		le.PutUint32(e[0x4c:], c)
		copy(e[0x50:], n.CLSID[:])
		le.PutUint32(e[0x60:], n.StateBits)
		copy(e[0x64:], n.Created[:])
		copy(e[0x6c:], n.Modified[:])
		switch n.Type {
		case TypeRoot:
			le.PutUint32(e[0x74:], miniStart)
			le.PutUint64(e[0x78:], uint64(miniLen))
		case TypeStream:
			le.PutUint32(e[0x74:], start[n])
			le.PutUint64(e[0x78:], uint64(n.Size))
		}
		if _, err := cw.Write(e[:]); err != nil {
			return cw.n, err
		}
	}
	for cw.n%ss != 0 {
		var e [direntSize]byte
		le.PutUint32(e[0x44:], noStream)
		le.PutUint32(e[0x48:], noStream)
		le.PutUint32(e[0x4c:], noStream)
		if _, err := cw.Write(e[:]); err != nil {
			return cw.n, err
		}
	}
	if err := u32s(fat, freeSect); err != nil {
		return cw.n, err
	}
	// DIFAT sectors: the FAT sectors past the header's 109, per-1 each,
	// then the next DIFAT sector.
	for i := range ndifat {
		vs := make([]uint32, per)
		for j := range per - 1 {
			k := headerDIFAT + i*(per-1) + j
			vs[j] = freeSect
			if k < nfat {
				vs[j] = fatStart + uint32(k)
			}
		}
		vs[per-1] = endOfChain
		if i+1 < ndifat {
			vs[per-1] = difatStart + uint32(i) + 1
		}
		if err := u32s(vs, freeSect); err != nil {
			return cw.n, err
		}
	}
	return cw.n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// pad writes zeros up to a multiple of a.
func (c *countWriter) pad(a int64) error {
	if r := c.n % a; r != 0 {
		_, err := c.Write(make([]byte, a-r))
		return err
	}
	return nil
}
