package csv

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"sync"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/csv/facts"
	fcat "github.com/codesignval/csv/csv/format/catalog"
	"github.com/codesignval/csv/csv/format/elf"
	"github.com/codesignval/csv/csv/suppress"
	"github.com/codesignval/csv/internal/panicerr"
	"github.com/codesignval/csv/internal/safefile"
	"github.com/codesignval/csv/signing"
)

// Facts, recorded once and judged many times (docs/facts.md): a run with
// a FactsRecorder sink writes every file's facts to a facts file as it
// judges them, in the same read; ValidateFacts judges such files with any
// policy, without the files, to the same verdicts.

// withOrigin prefixes a display path with the origin of the facts it was
// judged from.
func withOrigin(origin, p string) string {
	if origin == "" {
		return p
	}
	return origin + ":" + p
}

// FactsRecord returns the facts record of a judged result. The record
// holds what the run established: a run that records facts for later
// policies establishes them all (Options.AllDigests).
func FactsRecord(r *Result) *facts.Record {
	rec := &facts.Record{Root: r.Root, Path: r.Path, FileRoot: r.fileRoot, Format: r.Format, Size: r.Size, Signed: r.Signed,
		Decompressed: r.decompressed}
	rec.SetDigests(r.Digests)
	own := r.own
	if len(r.catalogs) == 0 {
		own = len(r.Signatures)
	}
	rec.SetSignatures(r.Signatures, own, r.catalogs)
	rec.SetAttributes(r.Attributes)
	rec.CatalogLookup = r.lookup.Algorithms()
	if ei, ok := r.Info.(*elf.Info); ok && ei.Type == 1 { // ET_REL
		rec.Relocatable = true
	}
	if ci, ok := r.Info.(*fcat.Info); ok && r.Format == cipolicy.FormatCatalog && r.Err == nil {
		rec.Catalog = &facts.CatalogFile{Signed: ci.Signed, Verified: ci.Catalog() != nil, Members: ci.MemberCount}
		if p := ci.Problem(); p != nil {
			rec.Catalog.Problem = p.Error()
		}
	}
	if r.Err != nil {
		rec.Problem = Message(r.Err)
	}
	return rec
}

// SkippedRecord returns the facts record of a file a run did not judge.
func SkippedRecord(s *SkippedFile) *facts.Record {
	return &facts.Record{Root: s.Root, Path: s.Path, FileRoot: s.fileRoot, Skipped: s.Reason}
}

// InspectionRecord returns the facts record of a file inspected on its own
// (InspectFile, InspectMembers), as a run over the file judges it: root
// is the file as given, rel its base name, and for a member of it what
// follows ("app.zip!/lib/x.dll"). A file of no format csv judges is a
// skipped record.
func InspectionRecord(root, rel string, in *Inspection) *facts.Record {
	switch {
	case in.Container != "" && in.Err == nil && in.Format == FormatOther:
		return &facts.Record{Root: root, Path: rel, FileRoot: true,
			Skipped: fmt.Sprintf("%s container: its members are judged (%s%s...)", in.Container, path.Base(rel), container.Separator)}
	case in.Format == FormatOther && in.Err == nil:
		return &facts.Record{Root: root, Path: rel, FileRoot: true, Skipped: "not a PE or ELF file"}
	}
	r := &Result{Root: root, Path: rel, fileRoot: true, Format: in.Format, Size: in.Size, Digests: in.Digests, Signed: in.signed,
		Signatures: in.Signatures, Attributes: in.Attributes, Info: in.Info, Err: in.Err, decompressed: in.decompressed}
	r.own = len(r.Signatures)
	return FactsRecord(r)
}

// FactsRecorder is a Sink that writes the facts of every file a run
// judges or skips to W, and passes the run on to Next. The run must
// establish every fact (Options.AllDigests) for the records to serve any
// later policy.
type FactsRecorder struct {
	W    *facts.Writer
	Next Sink
}

// Begin implements Sink.
func (f *FactsRecorder) Begin(rep *Report) error { return f.Next.Begin(rep) }

// Result implements Sink.
func (f *FactsRecorder) Result(r *Result) error {
	if err := f.W.Write(FactsRecord(r)); err != nil {
		return fmt.Errorf("recording facts: %w", err)
	}
	return f.Next.Result(r)
}

// Skipped implements Sink.
func (f *FactsRecorder) Skipped(s *SkippedFile) error {
	if err := f.W.Write(SkippedRecord(s)); err != nil {
		return fmt.Errorf("recording facts: %w", err)
	}
	return f.Next.Skipped(s)
}

// End implements Sink.
func (f *FactsRecorder) End(rep *Report) error { return f.Next.End(rep) }

// authenticodeDigest names the Authenticode digest of each hash a
// signature can be over.
var authenticodeDigest = map[crypto.Hash]cipolicy.HashAlgorithm{crypto.SHA256: cipolicy.AuthenticodeSHA256, crypto.SHA1: cipolicy.AuthenticodeSHA1}

// recordedError is a recorded inspection problem.
type recordedError struct{ msg string }

func (e *recordedError) Error() string   { return e.msg }
func (e *recordedError) Message() string { return e.msg }

// ValidateFacts judges the records of the facts files (docs/facts.md), in
// order, as ValidateTo judges files, and passes the outcome to sink (see
// Sink): each Result in record order, with the Origin of its file's
// header; the Report's Roots are the facts files and its Origins their
// origins. The records are read one at a time, so memory does not grow
// with their number. A record judges as the file it records would: the
// facts the policy compares are taken from it (and no others, so that
// reasons name what a run over the files would have computed); a fact it
// lacks that a rule in scope needs blocks it, and a file recorded as not
// inspectable stays blocked. Options that choose or read files (Include,
// Exclude, Shard, Catalogs, SignCheck, FollowSymlinks, Verity) do not
// apply to recorded facts and are refused. A malformed facts file is an
// error naming the file and line (*facts.ParseError): nothing of it is
// judged past that line.
func (v *Validator) ValidateFacts(ctx context.Context, sink Sink, files ...string) error {
	o := &v.opts
	switch {
	case len(files) == 0:
		return fmt.Errorf("%w: no facts files", ErrOptions)
	case len(o.Include) > 0 || len(o.Exclude) > 0 || o.Shard != nil || len(o.Catalogs) > 0 || o.SignCheck || o.FollowSymlinks || o.Verity != nil:
		return fmt.Errorf("%w: include, exclude, shard, catalogs, sign-check, follow-symlinks and verity choose or read files: they do not apply to recorded facts", ErrOptions)
	}
	rep := &Report{Policies: v.set.Policies(), Mode: v.set.Mode(), Scenario: o.Scenario,
		Roots: files, Started: o.Now(), Certificates: o.Certificates}
	type source struct {
		f  *os.File
		rd *facts.Reader
	}
	var srcs []source
	defer func() {
		for _, s := range srcs {
			s.f.Close()
		}
	}()
	for _, name := range files {
		f, _, err := safefile.Open(name, safefile.Options{})
		if err != nil {
			return fmt.Errorf("%w: facts file: %w", ErrOptions, err)
		}
		srcs = append(srcs, source{f: f})
		rd, err := facts.NewReader(f, name)
		if err != nil {
			return err
		}
		srcs[len(srcs)-1].rd = rd
		rep.Origins = append(rep.Origins, rd.Header.Origin)
		rep.NormalizedRoots = append(rep.NormalizedRoots, NormalizeRoot(name))
	}
	if err := sink.Begin(rep); err != nil {
		return err
	}
	emit := func(it *factsItem) error {
		if it.skipped != nil {
			rep.Summary.Skipped++
			return sink.Skipped(it.skipped)
		}
		r := it.result
		rep.Summary.Files++
		if r.Decision.Allowed() {
			rep.Summary.Allowed++
		} else {
			rep.Summary.Blocked++
			r.Suppressed = o.Suppressions.Match(suppress.Finding{Path: r.Path, Kind: r.Decision.Kind, Digests: r.Digests})
			if r.Suppressed != nil {
				rep.Summary.Suppressed++
			}
		}
		return sink.Result(r)
	}
	readers := make([]*facts.Reader, len(srcs))
	for i := range srcs {
		readers[i] = srcs[i].rd
	}
	if err := v.judgeInOrder(ctx, readers, emit); err != nil {
		return err
	}
	rep.Duration = o.Now().Sub(rep.Started)
	rep.Suppressions = o.Suppressions.Statuses()
	return sink.End(rep)
}

// factsItem is one record judged: a result, or a skipped file.
type factsItem struct {
	result  *Result
	skipped *SkippedFile
}

// factsBatch is consecutive records of one facts file, judged by one
// worker: their lines (one after another in buf), then their items or the
// first error among them. A batch is used again once emitted.
type factsBatch struct {
	src   int
	buf   []byte
	ends  []int // each line's end in buf
	nums  []int // each line's number
	items []factsItem
	err   error
	done  chan struct{}
}

// line returns the batch's k-th line.
func (b *factsBatch) line(k int) []byte {
	start := 0
	if k > 0 {
		start = b.ends[k-1]
	}
	return b.buf[start:b.ends[k]]
}

// fill empties b and reads into it the next lines of rd (source src): up
// to factsBatchSize records or until factsBatchBytes of lines are read,
// whichever comes first. It reports whether rd may have more (false at
// its end or at an error, which b.err holds).
func (b *factsBatch) fill(src int, rd *facts.Reader) bool {
	b.src, b.buf, b.ends, b.nums, b.items, b.err, b.done = src, b.buf[:0], b.ends[:0], b.nums[:0], b.items[:0], nil, make(chan struct{})
	for len(b.ends) < factsBatchSize && len(b.buf) < factsBatchBytes {
		buf, n, err := rd.AppendLine(b.buf)
		if errors.Is(err, io.EOF) {
			return false
		}
		if err != nil {
			b.err = err
			return false
		}
		b.buf, b.ends, b.nums = buf, append(b.ends, len(buf)), append(b.nums, n)
	}
	return true
}

// A batch holds factsBatchSize records or factsBatchBytes of lines (the
// last line past them, of at most limits.MaxFactsLine), whichever comes
// first; factsWindowPerJob batches per worker may be read and not yet
// emitted, and one more filled: a run holds so many batches, made once,
// whatever the number of records. With 2 workers, 9 batches: 2,304
// records, or 2.3 MiB of lines, and 38 MiB at worst (lines at their cap).
const (
	factsBatchSize    = 256
	factsBatchBytes   = 256 << 10
	factsWindowPerJob = 4
)

// judgeInOrder reads the records of every reader, in order, judges them
// on Options.Jobs workers (decoding a record costs more than judging
// it), and calls emit with each, in order, from the calling goroutine.
// The first error in record order (a malformed record, emit's) stops the
// run and is returned, after every record before it was emitted; so does
// a cancellation, as an InterruptedError.
func (v *Validator) judgeInOrder(ctx context.Context, readers []*facts.Reader, emit func(*factsItem) error) error {
	jobs := max(v.opts.Jobs, 1)
	window := jobs * factsWindowPerJob
	var wg sync.WaitGroup
	defer wg.Wait() // after the cancellation: the reader may wait to send
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan *factsBatch, window)
	order := make(chan *factsBatch, window)
	// free holds the batches emitted, for the reader to fill again: the
	// window's batches are made once.
	free := make(chan *factsBatch, window+1)
	wg.Add(1)
	go func() { // the reader: lines, in order
		defer wg.Done()
		defer close(work)
		defer close(order)
		made := 0
		for i, rd := range readers {
			for {
				var b *factsBatch
				select {
				case b = <-free:
				default:
					if made < window+1 {
						made++
						b = &factsBatch{}
					} else {
						select {
						case b = <-free:
						case <-ctx.Done():
							return
						}
					}
				}
				more := b.fill(i, rd)
				if len(b.ends) == 0 && b.err == nil {
					free <- b // never blocks: it came from free, or is one more of window+1
					break
				}
				stop := b.err != nil // read before a worker has b
				select {
				case order <- b:
				case <-ctx.Done():
					return
				}
				work <- b // never blocks: work has order's room
				if stop {
					return
				}
				if !more {
					break
				}
			}
		}
	}()
	decoders := make([][]*facts.Decoder, jobs)
	for w := range jobs {
		decoders[w] = make([]*facts.Decoder, len(readers))
		for i, rd := range readers {
			decoders[w][i] = rd.Decoder()
		}
		wg.Add(1)
		go func() { // a worker: decodes and judges batches
			defer wg.Done()
			for b := range work {
				origin := readers[b.src].Header.Origin
				for k := range b.ends {
					// The entry is the decoder's, until the next record:
					// the judge copies what it keeps (judgeRecord).
					e, err := decoders[w][b.src].DecodeTransient(b.line(k), b.nums[k])
					if err != nil {
						b.err = err
						break
					}
					if rec := e.Record; rec.Skipped != "" {
						b.items = append(b.items, factsItem{skipped: &SkippedFile{Root: rec.Root, Path: rec.Path, Reason: rec.Skipped, Origin: origin, fileRoot: rec.FileRoot}})
					} else if r, err := v.judgeRecovered(origin, e, readers[b.src].Name(), b.nums[k]); err != nil {
						b.err = err
						break
					} else {
						b.items = append(b.items, factsItem{result: r})
					}
				}
				close(b.done)
			}
		}()
	}
	done := 0
	for b := range order {
		select {
		case <-b.done:
		case <-ctx.Done():
			return &InterruptedError{Done: done, Total: done, Walking: true, Err: ctx.Err()}
		}
		for k := range b.items {
			if err := emit(&b.items[k]); err != nil {
				return err
			}
			b.items[k] = factsItem{} // the sink's now
			done++
			if v.opts.Progress != nil {
				v.opts.Progress(done, done)
			}
		}
		if b.err != nil {
			return b.err
		}
		if err := ctx.Err(); err != nil {
			return &InterruptedError{Done: done, Total: done, Walking: true, Err: err}
		}
		free <- b // never blocks: window+1 batches are made, at most
	}
	if err := ctx.Err(); err != nil {
		// The reader stopped at the cancellation.
		return &InterruptedError{Done: done, Total: done, Walking: true, Err: err}
	}
	return nil
}

// judgeFacts judges one record as ValidateTo's judge judges a file: with
// what the policy needs of it (and no more), the catalog signatures the recorder admitted it with,
// and a catalog file as a catalog.
func (v *Validator) judgeFacts(origin string, e *facts.Entry) Result {
	// As a run reads a file: first with the needs but those a policy
	// defers (Needs.Later), final unless the facts it lacks could still
	// admit the file (Decision.Incomplete); then with them all.
	need := v.needs(e.Record.Path, e.Record.Format)
	if l := e.Subject.Lookup; l.Len() > 0 && e.Record.Format != cipolicy.FormatCatalog {
		// What the recording run's catalogs had it compute first
		// (catalogIndex.needs).
		need.Digests = need.Digests.Union(l)
		need.Later.Digests = need.Later.Digests.Missing(need.Digests)
	}
	if !need.Later.IsZero() {
		r := v.judgeRecord(origin, e, need, true)
		if r.Err != nil || !r.Decision.Incomplete {
			return r
		}
	}
	return v.judgeRecord(origin, e, need.Full(), false)
}

// judgeRecord judges a record with the facts need names (partial: as a
// first read that deferred need.Later).
func (v *Validator) judgeRecord(origin string, e *facts.Entry, need cipolicy.Needs, partial bool) Result {
	rec, fs := e.Record, e.Subject
	r := Result{Root: rec.Root, Path: rec.Path, Format: rec.Format, Size: rec.Size, Signed: rec.Signed,
		Origin: origin, fileRoot: rec.FileRoot, decompressed: rec.Decompressed}
	if rec.Problem != "" {
		r.Err = &recordedError{rec.Problem}
	}
	// A digest's bytes are the entry's, which the next record's decoding
	// overwrites (facts.Decoder.DecodeTransient): the result keeps copies.
	if need.Digests.Len() > 0 {
		fs.Digests.Each(func(a cipolicy.HashAlgorithm, d []byte) {
			if need.Digests.Has(a) {
				r.Digests.Set(a, bytes.Clone(d))
			}
		})
	}
	own := fs.Signatures
	var catSigs []*signing.Signature
	if fs.Signatures != nil {
		own, catSigs = fs.Signatures[:fs.Own:fs.Own], fs.Signatures[fs.Own:]
	}
	if need.Signatures && rec.Signed && cipolicy.AuthenticodeSHA256.AppliesTo(rec.Format) {
		// A run that verifies an Authenticode subject's signatures
		// computes the image hashes they are over, and reports them.
		for _, sig := range own {
			if a, ok := authenticodeDigest[sig.DigestAlgorithm]; ok {
				if d := fs.Digests.Get(a); d != nil && r.Digests.Get(a) == nil {
					r.Digests.Set(a, bytes.Clone(d))
				}
			}
		}
	}
	if need.Signatures {
		r.Signatures = own
	}
	if need.Attributes {
		r.Attributes = fs.Attributes
	}
	if c := rec.Catalog; c != nil && r.Err == nil {
		r.Signatures = own // the handler verifies a catalog's signature whatever the policy
		var p error
		if c.Problem != "" {
			p = &recordedError{c.Problem}
		}
		r.Decision = v.judgeCatalog(&r, c.Verified, c.Signed, c.Members, p)
		return r
	}
	sub := cipolicy.Subject{Path: rec.Path, Format: r.Format, Scenario: v.opts.Scenario,
		Digests: r.Digests, Signed: r.Signed, Signatures: r.Signatures, Attributes: r.Attributes,
		Decompressed: rec.Decompressed, Relocatable: rec.Relocatable, Partial: partial}
	if r.Err != nil {
		sub.Problem = r.Err
	}
	var names []string
	if len(catSigs) > 0 && r.Err == nil {
		// As catalogIndex.admit adds them: after the file's own, whether
		// or not the policy has signer rules.
		sub.Signatures = append(slices.Clip(sub.Signatures), catSigs...)
		names = fs.Catalogs
	}
	n := len(r.Signatures)
	r.Decision = v.set.Evaluate(sub)
	r.Signatures = sub.Signatures
	admitted(&r, n, names)
	r.own, r.catalogs = n, names
	return r
}

// judgeRecovered is judgeFacts, with a panic (facts can make subjects no
// read of a file makes) an error naming the facts file and line.
func (v *Validator) judgeRecovered(origin string, e *facts.Entry, file string, line int) (r *Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			r, err = nil, &facts.ParseError{File: file, Line: line, Err: fmt.Errorf("internal error while judging (please report it): %w", panicerr.New(p))}
		}
	}()
	res := v.judgeFacts(origin, e)
	return &res, nil
}
