package eventlog

import (
	"encoding/binary"
	"fmt"
)

// Writer builds an event log, for tests and for driving a software TPM: it
// writes the records and keeps the PCR values a TPM extended with the same
// digests would hold ([Writer.PCRs]), computed independently of [Log.Replay].
type Writer struct {
	format Format
	algs   []HashAlg
	buf    []byte
	pcrs   PCRs
}

// NewWriter starts a log. A FormatSHA1 log has the SHA1 bank only (algs
// must be empty or SHA1); a FormatCryptoAgile log starts with a Spec ID
// Event03 header declaring algs (at least one, of known size).
func NewWriter(f Format, algs ...HashAlg) (*Writer, error) {
	w := &Writer{format: f, pcrs: PCRs{}}
	switch f {
	case FormatSHA1:
		if len(algs) > 1 || (len(algs) == 1 && algs[0] != SHA1) {
			return nil, fmt.Errorf("eventlog: a SHA1-format log has the SHA1 bank only")
		}
		w.algs = []HashAlg{SHA1}
	case FormatCryptoAgile:
		if len(algs) == 0 {
			return nil, fmt.Errorf("eventlog: a crypto-agile log needs at least one bank")
		}
		for _, a := range algs {
			if a.Size() == 0 || a.Hash() == 0 {
				return nil, fmt.Errorf("eventlog: the writer cannot hash bank %s", a)
			}
		}
		w.algs = append([]HashAlg(nil), algs...)
		hdr := append([]byte(nil), specIDSignature...)
		hdr = binary.LittleEndian.AppendUint32(hdr, 0) // platform class: client
		hdr = append(hdr, 0, 2, 0, 2)                  // minor, major, errata, uintn size (64-bit)
		hdr = binary.LittleEndian.AppendUint32(hdr, uint32(len(algs)))
		for _, a := range algs {
			hdr = binary.LittleEndian.AppendUint16(hdr, uint16(a))
			hdr = binary.LittleEndian.AppendUint16(hdr, uint16(a.Size()))
		}
		hdr = append(hdr, 0) // no vendor info
		w.buf = appendSHA1Event(w.buf, 0, EvNoAction, make([]byte, 20), hdr)
	default:
		return nil, fmt.Errorf("eventlog: unknown format %v", f)
	}
	for _, a := range w.algs {
		bank := new(Bank)
		for p := range bank {
			bank[p] = make([]byte, a.Size())
			initialValue(bank[p], p, 0)
		}
		w.pcrs[a] = bank
	}
	return w, nil
}

func appendSHA1Event(b []byte, pcr uint32, typ EventType, digest, data []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, pcr)
	b = binary.LittleEndian.AppendUint32(b, uint32(typ))
	b = append(b, digest...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(data)))
	return append(b, data...)
}

// Append writes an event whose digest in every bank is the hash of data
// (zeros for EV_NO_ACTION events, as the specification requires).
func (w *Writer) Append(pcr uint32, typ EventType, data []byte) {
	ds := make([]Digest, len(w.algs))
	for i, a := range w.algs {
		ds[i] = Digest{Alg: a, Value: a.Sum(data)}
		if typ == EvNoAction {
			ds[i].Value = make([]byte, a.Size())
		}
	}
	w.AppendDigests(pcr, typ, data, ds...)
}

// AppendDigests writes an event with the digests given, in that order, as
// they are: a test may omit a bank, add one the header does not declare, or
// give a digest of any length. A SHA1-format record takes the first
// digest's value. The PCR values follow the digests the TPM would have been
// given: each digest of a declared bank, of the right size, is extended.
func (w *Writer) AppendDigests(pcr uint32, typ EventType, data []byte, digests ...Digest) {
	if w.format == FormatSHA1 {
		var d []byte
		if len(digests) > 0 {
			d = digests[0].Value
		}
		d = append(d, make([]byte, 20)...)[:20]
		w.buf = appendSHA1Event(w.buf, pcr, typ, d, data)
	} else {
		w.buf = binary.LittleEndian.AppendUint32(w.buf, pcr)
		w.buf = binary.LittleEndian.AppendUint32(w.buf, uint32(typ))
		w.buf = binary.LittleEndian.AppendUint32(w.buf, uint32(len(digests)))
		for _, d := range digests {
			w.buf = binary.LittleEndian.AppendUint16(w.buf, uint16(d.Alg))
			w.buf = append(w.buf, d.Value...)
		}
		w.buf = binary.LittleEndian.AppendUint32(w.buf, uint32(len(data)))
		w.buf = append(w.buf, data...)
	}
	if typ == EvNoAction || pcr >= NumPCRs {
		if typ == EvNoAction && pcr == 0 && len(data) == 17 && string(data[:16]) == string(startupLocality) {
			for _, bank := range w.pcrs {
				bank[0][len(bank[0])-1] = data[16]
			}
		}
		return
	}
	for _, d := range digests {
		bank := w.pcrs[d.Alg]
		if bank == nil || len(d.Value) != d.Alg.Size() {
			continue
		}
		h := d.Alg.Hash().New()
		h.Write(bank[pcr])
		h.Write(d.Value)
		bank[pcr] = h.Sum(nil)
	}
}

// Extend changes the PCR values as if the TPM had been extended with the
// digests of data in every bank, without logging an event: how firmware
// that omits events from its log behaves.
func (w *Writer) Extend(pcr uint32, data []byte) {
	for a, bank := range w.pcrs {
		h := a.Hash().New()
		h.Write(bank[pcr])
		h.Write(a.Sum(data))
		bank[pcr] = h.Sum(nil)
	}
}

// StartupLocality writes the EV_NO_ACTION StartupLocality event that sets
// PCR 0's initial value. Write it first.
func (w *Writer) StartupLocality(locality byte) {
	w.Append(0, EvNoAction, append(append([]byte(nil), startupLocality...), locality))
}

// Bytes returns the log written so far.
func (w *Writer) Bytes() []byte { return append([]byte(nil), w.buf...) }

// PCRs returns the PCR values a TPM would hold after the events written so
// far (a copy).
func (w *Writer) PCRs() PCRs {
	out := PCRs{}
	for a, bank := range w.pcrs {
		b := new(Bank)
		for p := range bank {
			b[p] = append([]byte(nil), bank[p]...)
		}
		out[a] = b
	}
	return out
}
