package msi

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/codesignval/csv/internal/binfmt/cfb"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode/msi"
)

// The database of an installation package, as far as csv reads it: the
// string pool, _Columns, and the Media and File tables, to know where the
// files the package installs come from. The layout is Windows Installer's
// (established from msitools' libmsi, string.c and table.c, and Microsoft's
// Media and File table documentation):
//
//   - Every table is a root stream named U+4840 and the encoded table name.
//   - _StringPool: a 4-byte header (the code page, bit 31 set when string
//     references are 3 bytes wide instead of 2), then a 4-byte entry (length,
//     reference count; 16 bits each) per string id from 1. An entry of
//     length 0 and a count that is not 0 holds a string of 64 KiB or more:
//     its count is the high 16 bits of the length, and the next entry the
//     low 16 bits and the count, for the same id. 0, 0 is an unused id.
//     _StringData holds the strings one after the other, in id order; their
//     lengths add up to its size.
//   - A table's rows are stored by column: every row's value of the first
//     column, then of the second, and so on; a table's size is a multiple of
//     its row size. A string column (and a binary one, 2 bytes) holds a
//     string id (0 for null); an integer column 2 or 4 bytes, stored as the
//     value plus 0x8000 (or xor 0x80000000), 0 for null.
//   - _Columns (Table s64, Number i2, Name s64, Type i2: its layout is not
//     in itself) gives every other table's columns: their numbers from 1,
//     and types whose bits say string (0x0800), nullable (0x1000) and the
//     integer size (the low byte: 2 or 4).
const (
	colTypeString   = 0x0800
	colTypeNullable = 0x1000
	colTypeValid    = 0x0100
	colTypeSize     = 0x00ff

	// maxColumns is the most columns a table has (Windows Installer's
	// limit).
	maxColumns = 32

	// fileNoncompressed is the File table's msidbFileAttributesNoncompressed:
	// the file is laid down from the source beside the package, not from a
	// cabinet.
	fileNoncompressed = 0x2000
)

// mediaRow is a row of the Media table, with the File table's rows it
// covers: a disk holds the files whose Sequence is above the previous
// disk's LastSequence and at most its own.
type mediaRow struct {
	Disk         int64
	LastSequence int64
	// Cabinet is the cabinet's name as the row stores it ("#name" is the
	// stream "name" of the package; another name a file beside the
	// package; "" none: the files are laid down uncompressed from the
	// source beside the package).
	Cabinet string
	// Files counts the File rows on this disk; Uncompressed those marked
	// msidbFileAttributesNoncompressed (laid down from beside the package
	// whatever the cabinet).
	Files, Uncompressed int
}

// database reads the tables of one package.
type database struct {
	// tables reads a table's stream by the table's name, at most max
	// bytes (a larger stream is an error wrapping signing.ErrLimit).
	tables map[string]func(max int64) ([]byte, error)
	// data is the string data and ends[id] where string id ends in it
	// (ends[0] is 0: id 0 is null); long says string references are 3
	// bytes; codepage is the pool's.
	data     []byte
	ends     []uint32
	long     bool
	codepage uint32
	columns  map[string][]column // of the tables asked for
}

// column is a column of a table, as _Columns gives it.
type column struct {
	name  string
	typ   uint16
	width int // bytes per value in the stored table
}

func (c column) str() bool { return c.typ&colTypeString != 0 }

// malformedDB is the error of a database csv cannot read.
func malformedDB(format string, args ...any) error {
	return &signing.MalformedError{Format: cfb.Format, Offset: -1, Reason: "installer database: " + fmt.Sprintf(format, args...)}
}

// readMedia reads an installation package's Media table and the
// sequences of its File table. A package with no Media table has no
// media (nil); one whose tables csv cannot read strictly is malformed.
func readMedia(f *cfb.File) ([]mediaRow, error) {
	tables := map[string]func(int64) ([]byte, error){}
	for _, c := range f.Entries[0].Children {
		e := &f.Entries[c]
		if e.Type != cfb.TypeStream {
			continue
		}
		if name, ok := strings.CutPrefix(msi.DecodeName(e.Name), msi.TablePrefix); ok {
			if _, dup := tables[name]; dup {
				return nil, malformedDB("two streams hold the table %q", name)
			}
			tables[name] = func(max int64) ([]byte, error) {
				s, err := f.Open(c)
				if err != nil {
					return nil, err
				}
				if s.Size() > max {
					return nil, capError(name, s.Size(), max)
				}
				return s.ReadAll(max)
			}
		}
	}
	return readTables(tables)
}

// capError says a table's stream is over its cap.
func capError(table string, size, max int64) error {
	return &signing.MalformedError{Format: cfb.Format, Offset: -1, Err: signing.ErrLimit,
		Reason: fmt.Sprintf("installer database: the %s table's stream is %d bytes, over the %d-byte cap (limits.MaxMSITable, limits.MaxMSIStringPool)", table, size, max)}
}

// readTables is readMedia over the table streams.
func readTables(tables map[string]func(max int64) ([]byte, error)) ([]mediaRow, error) {
	db := &database{tables: tables}
	if _, ok := db.tables["Media"]; !ok {
		return nil, nil
	}
	if err := db.readStrings(); err != nil {
		return nil, err
	}
	if err := db.readColumns("Media", "File"); err != nil {
		return nil, err
	}
	var out []mediaRow
	err := db.rows("Media", "Cabinet", func(r int, v []value) error {
		if len(out) >= limits.MaxMSIMedia {
			return &signing.MalformedError{Format: cfb.Format, Offset: -1,
				Reason: fmt.Sprintf("installer database: the Media table holds more than %d rows (limits.MaxMSIMedia; DiskId is a 16-bit key)", limits.MaxMSIMedia), Err: signing.ErrLimit}
		}
		if v[0].null || v[1].null {
			return malformedDB("Media row %d has no DiskId or LastSequence", r+1)
		}
		m := mediaRow{Disk: v[0].n, LastSequence: v[1].n}
		if !v[2].null {
			var err error
			if m.Cabinet, err = db.text(v[2].s, "Media", "Cabinet"); err != nil {
				return err
			}
		}
		out = append(out, m)
		return nil
	}, "DiskId", "LastSequence", "Cabinet")
	if err != nil {
		return nil, err
	}
	// Each file to its disk: the first whose LastSequence is at least its
	// Sequence, in LastSequence order (Windows Installer's).
	order := make([]int, len(out))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return out[order[a]].LastSequence < out[order[b]].LastSequence })
	last := make([]int64, len(order))
	for i, k := range order {
		last[i] = out[k].LastSequence
	}
	if _, ok := db.tables["File"]; ok {
		err := db.rows("File", "", func(r int, v []value) error {
			if v[0].null {
				return malformedDB("File row %d has no Sequence", r+1)
			}
			j, _ := slices.BinarySearch(last, v[0].n)
			if j == len(last) {
				return nil // on no disk: Windows Installer finds no source for it
			}
			m := &out[order[j]]
			m.Files++
			if !v[1].null && v[1].n&fileNoncompressed != 0 {
				m.Uncompressed++
			}
			return nil
		}, "Sequence", "Attributes")
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// stream reads a table's stream whole: at most limits.MaxMSIStringPool
// bytes for the pool, limits.MaxMSITable for others.
func (db *database) stream(table string) ([]byte, error) {
	read, ok := db.tables[table]
	if !ok {
		return nil, nil
	}
	max := int64(limits.MaxMSITable)
	if table == "_StringPool" {
		max = limits.MaxMSIStringPool
	}
	return read(max)
}

// readStrings reads _StringPool and _StringData.
func (db *database) readStrings() error {
	pool, err := db.stream("_StringPool")
	if err != nil {
		return err
	}
	data, err := db.stream("_StringData")
	if err != nil {
		return err
	}
	if len(pool) < 4 || len(pool)%4 != 0 {
		return malformedDB("the string pool is %d bytes, not a 4-byte header and 4-byte entries", len(pool))
	}
	le := binary.LittleEndian
	head := le.Uint32(pool)
	db.long, db.codepage = head&0x80000000 != 0, head&^0x80000000
	db.data, db.ends = data, make([]uint32, 1, len(pool)/4)
	off := 0
	for i := 4; i < len(pool); i += 4 {
		n, refs := int(le.Uint16(pool[i:])), le.Uint16(pool[i+2:])
		if n == 0 && refs != 0 {
			// A string of 64 KiB or more: this entry holds the length's
			// high 16 bits, the next the low ones.
			if i+4 >= len(pool) {
				return malformedDB("the string pool ends inside the entry of string %d", len(db.ends))
			}
			i += 4
			n = int(refs)<<16 | int(le.Uint16(pool[i:]))
		}
		if n > len(data)-off {
			return malformedDB("string %d (%d bytes) runs past the string data's %d bytes", len(db.ends), n, len(data))
		}
		off += n
		db.ends = append(db.ends, uint32(off))
	}
	if off != len(data) {
		return malformedDB("the string pool's lengths add up to %d bytes, the string data holds %d: bytes no string holds", off, len(data))
	}
	return nil
}

// readColumns reads the columns of the tables named from _Columns.
func (db *database) readColumns(tables ...string) error {
	raw, err := db.stream("_Columns")
	if err != nil {
		return err
	}
	ref := db.refWidth()
	// Table (string), Number (i2), Name (string), Type (i2).
	rowSize := 2*ref + 4
	if len(raw)%rowSize != 0 {
		return malformedDB("the _Columns table is %d bytes, not a multiple of its %d-byte rows", len(raw), rowSize)
	}
	rows := len(raw) / rowSize
	want := map[string]bool{}
	for _, t := range tables {
		want[t] = true
	}
	db.columns = map[string][]column{}
	at := func(colOff, width, row int) uint32 { return uintLE(raw[colOff*rows+row*width:][:width]) }
	type numbered struct {
		n int
		c column
	}
	found := map[string][]numbered{}
	for r := range rows {
		tid := at(0, ref, r)
		tname, err := db.lookup(tid, "_Columns", "Table")
		if err != nil {
			return err
		}
		if tname == nil || !want[string(tname)] {
			continue
		}
		if len(found[string(tname)]) >= maxColumns {
			return malformedDB("table %q has more than %d columns, Windows Installer's maximum", tname, maxColumns)
		}
		num, name, typ := at(ref, 2, r), at(ref+2, ref, r), at(2*ref+2, 2, r)
		if num <= 0x8000 || typ == 0 {
			return malformedDB("_Columns row %d: column number %d or type %d of table %q is not one", r+1, int(num)-0x8000, int(typ)-0x8000, tname)
		}
		cname, err := db.lookup(name, "_Columns", "Name")
		if err != nil {
			return err
		}
		c := column{name: string(cname), typ: uint16(typ - 0x8000)}
		if c.width, err = db.width(c); err != nil {
			return malformedDB("table %q column %q: %v", tname, cname, err)
		}
		found[string(tname)] = append(found[string(tname)], numbered{int(num - 0x8000), c})
	}
	for t, cols := range found {
		sort.Slice(cols, func(a, b int) bool { return cols[a].n < cols[b].n })
		for i, c := range cols {
			if c.n != i+1 {
				return malformedDB("table %q: columns numbered %d where %d was due (a gap or a repeated number)", t, c.n, i+1)
			}
			db.columns[t] = append(db.columns[t], c.c)
		}
	}
	return nil
}

// width is the bytes one value of c takes in a stored table (msitools'
// bytes_per_column).
func (db *database) width(c column) (int, error) {
	switch {
	case c.typ&^colTypeNullable == colTypeString|colTypeValid: // a binary (stream) column
		return 2, nil
	case c.str():
		return db.refWidth(), nil
	case c.typ&colTypeSize <= 2:
		return 2, nil
	case c.typ&colTypeSize == 4:
		return 4, nil
	}
	return 0, fmt.Errorf("type %#x: an integer column of %d bytes", c.typ, c.typ&colTypeSize)
}

func (db *database) refWidth() int {
	if db.long {
		return 3
	}
	return 2
}

// value is one stored value: an integer (n) or a string id (s).
type value struct {
	n    int64
	s    uint32
	null bool
}

// rows calls fn with the named columns of every row of a table, in
// order (none if the table has no stream: Windows Installer reads an
// empty table); vals is reused from row to row. The columns named must
// be integers, but for str.
func (db *database) rows(table string, str string, fn func(row int, vals []value) error, names ...string) error {
	cols, ok := db.columns[table]
	if !ok {
		return malformedDB("the %s table has a stream and no columns in _Columns", table)
	}
	idx := make([]int, len(names))
	offs := make([]int, len(cols)+1)
	for i, c := range cols {
		offs[i+1] = offs[i] + c.width
	}
	for k, n := range names {
		idx[k] = slices.IndexFunc(cols, func(c column) bool { return c.name == n })
		if idx[k] < 0 {
			return malformedDB("the %s table has no %s column", table, n)
		}
		if cols[idx[k]].str() != (n == str) {
			return malformedDB("the %s table's %s column has type %#x", table, n, cols[idx[k]].typ)
		}
	}
	raw, err := db.stream(table)
	if err != nil {
		return err
	}
	rowSize := offs[len(cols)]
	if len(raw)%rowSize != 0 {
		return malformedDB("the %s table is %d bytes, not a multiple of its %d-byte rows", table, len(raw), rowSize)
	}
	n := len(raw) / rowSize
	vals := make([]value, len(names))
	for r := range n {
		for k, i := range idx {
			c := cols[i]
			u := uintLE(raw[offs[i]*n+r*c.width:][:c.width])
			v := value{null: u == 0}
			switch {
			case c.str():
				v.s = u
			case c.width == 2:
				v.n = int64(u) - 0x8000
			default:
				v.n = int64(int32(u ^ 0x80000000))
			}
			vals[k] = v
		}
		if err := fn(r, vals); err != nil {
			return err
		}
	}
	return nil
}

// lookup returns the string of id (nil for 0, the null string).
func (db *database) lookup(id uint32, table, col string) ([]byte, error) {
	if id == 0 {
		return nil, nil
	}
	if int64(id) >= int64(len(db.ends)) {
		return nil, malformedDB("the %s table's %s column names string %d, the pool holds %d", table, col, id, len(db.ends)-1)
	}
	return db.data[db.ends[id-1]:db.ends[id]], nil
}

// text returns the string of id as text: ASCII, or UTF-8 in a pool of code
// page 65001. Other bytes are in a code page csv does not decode, and a
// name in it cannot be matched with a stream's or a file's.
func (db *database) text(id uint32, table, col string) (string, error) {
	b, err := db.lookup(id, table, col)
	if err != nil {
		return "", err
	}
	ascii := true
	for _, c := range b {
		if c >= 0x80 {
			ascii = false
			break
		}
	}
	if !ascii && (db.codepage != 65001 || !utf8.Valid(b)) {
		return "", malformedDB("the %s table's %s %q is not ASCII, in code page %d, which csv does not decode", table, col, b, db.codepage)
	}
	return string(b), nil
}

// uintLE reads a little-endian unsigned integer of 2, 3 or 4 bytes.
func uintLE(b []byte) uint32 {
	var u uint32
	for i, c := range b {
		u |= uint32(c) << (8 * i)
	}
	return u
}
