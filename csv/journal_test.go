package csv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/codesignval/csv/internal/panicerr"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/signing"
)

// killedTree is a build of PE and ELF files for the kill tests.
func killedTree(t *testing.T) string {
	t.Helper()
	files := map[string][]byte{"docs/notes.txt": []byte("text")}
	for i := range 12 {
		files[fmt.Sprintf("d%d/f%02d.exe", i%3, i)] = testbin.PE(testbin.PEOptions{Overlay: bytes.Repeat([]byte{byte(i)}, 64<<10)})
	}
	files["d0/tool"] = testbin.ELF(testbin.ELFOptions{})
	return tree(t, files)
}

// killSign runs csv sign (TestSignHelperProcess) on dir until it reaches
// stage, and kills it there with SIGKILL.
func killSign(t *testing.T, s *signer, dir, out, stage string, noLink bool) {
	t.Helper()
	keyFile := filepath.Join(t.TempDir(), "key.pem")
	os.WriteFile(keyFile, testca.KeyPEM(t, s.leaf.Key), 0o600)
	chainFile := filepath.Join(t.TempDir(), "chain.pem")
	os.WriteFile(chainFile, testca.PEM(s.chain...), 0o644)
	cmd := exec.Command(os.Args[0], "-test.run=^TestSignHelperProcess$")
	cmd.Env = append(os.Environ(), "CSV_SIGN_HELPER=1", "CSV_SIGN_DIR="+dir, "CSV_SIGN_OUT="+out,
		"CSV_SIGN_KEY="+keyFile, "CSV_SIGN_CHAIN="+chainFile, "CSV_SIGN_STAGE="+stage)
	if noLink {
		cmd.Env = append(cmd.Env, "CSV_SIGN_NOLINK=1")
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, len(stage)+1)
	if _, err := io.ReadFull(stdout, line); err != nil || string(line) != stage+"\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper: %q, %v", line, err)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
}

// leftovers lists the files under dir named like csv sign's temporary
// files, backups and journals.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && isSignLeftover(d.Name()) {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// TestSignKilledThenRerun kills csv sign with SIGKILL at the worst moments
// (temporary files half written; the commit journaled, nothing renamed; in
// the middle of the renames, a backup made and its rename not done; every
// file in place, backups not yet removed) and checks what the next run of
// the same csv sign does: validate first blocks what the killed run left
// and says how to recover; the recovery leaves no file of the killed run
// and puts the tree back as it was (or, without hard links, or once every
// file was in place, as the killed run would have left it); the re-run then
// signs every binary once, and the tree validates.
func TestSignKilledThenRerun(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("SIGKILL")
	}
	s := newSigner(t)
	certs := []*signing.Certificate{sigCert(t, s.leaf.Cert), sigCert(t, s.ca.Intermediate.Cert)}
	for _, tc := range []struct {
		stage   string
		out     bool
		noLink  bool
		outcome string
	}{
		{stage: "signing", outcome: Cleaned},
		{stage: "committed", outcome: Restored},
		{stage: "renaming", outcome: Restored},
		{stage: "renaming", out: true, outcome: Restored},
		{stage: "renaming", noLink: true, outcome: Finished},
		{stage: "done", outcome: Finished},
	} {
		name := tc.stage
		if tc.out {
			name += ", --out"
		}
		if tc.noLink {
			name += ", no hard links"
		}
		t.Run(name, func(t *testing.T) {
			dir := killedTree(t)
			originals := snapshot(t, dir)
			var out string
			target := dir
			if tc.out {
				out = filepath.Join(t.TempDir(), "signed")
				target = out
			}
			killSign(t, s, dir, out, tc.stage, tc.noLink)
			left := leftovers(t, target)
			if len(left) == 0 {
				t.Fatal("the killed run left nothing: the test did not hit the stage")
			}

			// validate blocks what is left, and says how to recover.
			blocked := 0
			for _, r := range validate(t, policyFor(t), Options{}, target).Results {
				if isSignLeftover(filepath.Base(r.Path)) {
					blocked++
					if r.Decision.Allowed() || !strings.Contains(r.Decision.Reason, "run the same csv sign again") {
						t.Errorf("%s: %s", r.Path, r.Decision.Reason)
					}
				}
			}
			if blocked != len(left) {
				t.Errorf("validate blocks %d of the %d files left", blocked, len(left))
			}

			opts := s.opts()
			opts.Out = out
			rec, err := RecoverSign(t.Context(), opts, dir)
			if err != nil || len(rec.Runs) != 1 || rec.Runs[0].Outcome != tc.outcome || len(rec.Ignored) > 0 {
				t.Fatalf("recovery: %+v, %v", rec, err)
			}
			t.Logf("recovered: %+v", rec.Runs[0])
			if l := leftovers(t, target); len(l) > 0 {
				t.Errorf("left after recovery: %v", l)
			}
			after := snapshot(t, target)
			switch {
			case tc.outcome != Finished && tc.out:
				if len(after) != 0 {
					t.Errorf("--out holds %d files after the killed run was undone", len(after))
				}
			case tc.outcome != Finished:
				if !reflect.DeepEqual(after, originals) {
					t.Error("the tree is not as it was before the killed run")
				}
			default:
				// As the killed run would have left it: every binary signed
				// once over its original's image.
				for name, orig := range originals {
					if !strings.HasSuffix(name, ".exe") {
						continue
					}
					in := InspectFile(t.Context(), filepath.Join(target, name), nil, InspectOptions{Certificates: certs})
					if in.Err != nil || len(in.Signatures) != 1 || !in.Signatures[0].Verified() || !bytes.Equal(in.Signatures[0].Digest, imageDigest(t, orig)) {
						t.Errorf("%s is not the signed original after the run was finished", name)
					}
				}
			}

			// The re-run signs everything once, and the result validates.
			rep, err := Sign(t.Context(), opts, dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Leftovers) > 0 || len(rep.Recovery.Runs) > 0 {
				t.Errorf("re-run: leftovers %v, recovered %+v", rep.Leftovers, rep.Recovery)
			}
			vrep := validate(t, s.pcaPolicy(t), Options{Certificates: certs}, target)
			if vrep.Failed() || vrep.Summary.Files != 13 {
				for _, r := range vrep.Results {
					t.Logf("%s: %s", r.Path, r.Decision.Reason)
				}
				t.Errorf("after the re-run: %+v", vrep.Summary)
			}
			for _, r := range vrep.Results {
				if len(r.Signatures) != 1 {
					t.Errorf("%s carries %d signatures", r.Path, len(r.Signatures))
				}
			}
		})
	}
}

// TestRecoveryTouchesOnlyWhatIsProvablyCsvs: a file merely named like csv
// sign's temporary files, a journal naming files outside the paths signed,
// the journal of a run still going, and a killed run whose files changed
// since are all left alone; the last stops the recovery (RecoveryError)
// before it changes anything.
func TestRecoveryTouchesOnlyWhatIsProvablyCsvs(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("SIGKILL")
	}
	s := newSigner(t)

	t.Run("unprovable leftovers", func(t *testing.T) {
		dir := killedTree(t)
		fake := filepath.Join(dir, "d0", ".f00.exe.csv-sign-0123456789ab")
		os.WriteFile(fake, peImg, 0o644)
		outside := t.TempDir()
		victim := filepath.Join(outside, ".x.exe.csv-sign-00112233aabb")
		os.WriteFile(victim, []byte("not csv's"), 0o644)
		forged := fmt.Sprintf(`{"kind":"run","v":1,"pid":1}
{"kind":"temp","temp":%q,"dest":%q}
`, victim, filepath.Join(outside, "x.exe"))
		journalPath := filepath.Join(dir, journalPrefix+"0123456789ab")
		os.WriteFile(journalPath, []byte(forged), 0o644)

		rep, err := Sign(t.Context(), s.opts(), dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Recovery.Ignored) != 1 || !strings.Contains(rep.Recovery.Ignored[0], "outside") {
			t.Errorf("recovery: %+v", rep.Recovery)
		}
		for _, p := range []string{fake, victim, journalPath} {
			if _, err := os.Stat(p); err != nil {
				t.Errorf("%s was removed: %v", p, err)
			}
		}
		if len(rep.Leftovers) != 2 {
			t.Errorf("leftovers reported: %v", rep.Leftovers)
		}
		for _, r := range validate(t, policyFor(t), Options{}, dir).Results {
			if strings.Contains(r.Path, "csv-sign") && (r.Decision.Allowed() || !strings.Contains(r.Decision.Reason, "remove it by hand")) {
				t.Errorf("%s: %s", r.Path, r.Decision.Reason)
			}
		}
	})

	// A journal is unauthenticated: whoever can write the tree can write
	// one, with the identity of any file they can stat. One naming a file
	// beside the manifest (in the workspace, out of the tree), or one
	// another user wrote, must not make csv remove that file: as "a
	// destination that did not exist before the run" it would.
	t.Run("a forged journal", func(t *testing.T) {
		forge := func(t *testing.T, dir, dest string) string {
			t.Helper()
			fi, err := os.Lstat(dest)
			if err != nil {
				t.Fatal(err)
			}
			id := identityOf(fi)
			rel := func(p string) string {
				r, err := filepath.Rel(dir, p)
				if err != nil {
					t.Fatal(err)
				}
				return r
			}
			b := filepath.Base(dest)
			recs := []record{
				{Kind: recRun, Version: journalVersion, PID: 1},
				{Kind: recPlace, Temp: rel(filepath.Join(filepath.Dir(dest), "."+b+tempMarker+"aaaaaaaaaaaa")), Dest: rel(dest),
					Backup: rel(filepath.Join(filepath.Dir(dest), "."+b+tempMarker+"bbbbbbbbbbbb")), TempID: &id},
				{Kind: recCommit, N: 1},
			}
			var data []byte
			for _, r := range recs {
				line, _ := json.Marshal(r)
				data = append(append(data, line...), '\n')
			}
			p := filepath.Join(dir, journalPrefix+"0123456789ab")
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			return p
		}
		t.Run("beside the manifest", func(t *testing.T) {
			ws := t.TempDir()
			dir := filepath.Join(ws, "build")
			os.Mkdir(dir, 0o755)
			os.WriteFile(filepath.Join(dir, "a.exe"), peImg, 0o644)
			victim := filepath.Join(ws, "important.txt")
			os.WriteFile(victim, []byte("not csv's"), 0o644)
			forge(t, dir, victim)
			rec, err := RecoverSign(t.Context(), SignOptions{Manifest: filepath.Join(ws, "build.manifest.json")}, dir)
			if err != nil || len(rec.Runs) != 0 || len(rec.Ignored) != 1 || !strings.Contains(rec.Ignored[0], "outside") {
				t.Errorf("recovery: %+v, %v", rec, err)
			}
			if _, err := os.Stat(victim); err != nil {
				t.Errorf("the file beside the manifest was removed: %v", err)
			}
		})
		t.Run("another user's", func(t *testing.T) {
			if os.Geteuid() != 0 {
				t.Skip("making a file another user owns needs root")
			}
			dir := killedTree(t)
			victim := filepath.Join(dir, "d1", "f01.exe")
			j := forge(t, dir, victim)
			if err := os.Chown(j, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			rec, err := RecoverSign(t.Context(), SignOptions{}, dir)
			if err != nil || len(rec.Runs) != 0 || len(rec.Ignored) != 1 || !strings.Contains(rec.Ignored[0], "owned by user 65534") {
				t.Errorf("recovery: %+v, %v", rec, err)
			}
			if _, err := os.Stat(victim); err != nil {
				t.Errorf("a file another user's journal names was removed: %v", err)
			}
		})
	})

	t.Run("a run still going", func(t *testing.T) {
		dir := killedTree(t)
		tr, err := newSignTree(&SignOptions{}, []string{dir})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.close()
		j, err := openJournal(tr, tr.journalDir())
		if err != nil {
			t.Fatal(err)
		}
		defer j.close(true)
		temp := filepath.Join(dir, "d0", ".f00.exe.csv-sign-aaaaaaaaaaaa")
		j.temp(temp, filepath.Join(dir, "d0", "f00.exe"))
		os.WriteFile(temp, []byte("half"), 0o644)
		rec, err := RecoverSign(t.Context(), SignOptions{}, dir)
		if err != nil || len(rec.Running) != 1 || len(rec.Runs) != 0 {
			t.Errorf("recovery: %+v, %v", rec, err)
		}
		if _, err := os.Stat(temp); err != nil {
			t.Error("a running run's temporary file was removed")
		}
	})

	t.Run("changed since the kill", func(t *testing.T) {
		dir := killedTree(t)
		killSign(t, s, dir, "", "renaming", false)
		// A file not yet renamed is rebuilt, and one renamed is replaced.
		var notYet, renamed string
		for _, l := range leftovers(t, dir) {
			base := filepath.Base(l)
			if isJournalName(base) {
				continue
			}
			dest := filepath.Join(filepath.Dir(l), strings.TrimPrefix(base[:strings.LastIndex(base, tempMarker)], "."))
			in := InspectFile(t.Context(), dest, nil, InspectOptions{})
			if in.Signed() {
				renamed = dest
			} else {
				notYet = dest
			}
		}
		if notYet == "" || renamed == "" {
			t.Fatalf("killed while renaming, yet not one file renamed and one not: %v", leftovers(t, dir))
		}
		os.WriteFile(notYet, testbin.PE(testbin.PEOptions{Overlay: []byte("rebuilt")}), 0o644)
		before := snapshot(t, dir)
		_, err := RecoverSign(t.Context(), SignOptions{}, dir)
		var re *RecoveryError
		if !errors.As(err, &re) || !errors.Is(err, ErrUnfinishedSign) || !strings.Contains(err.Error(), notYet) {
			t.Fatalf("err = %v", err)
		}
		if !reflect.DeepEqual(snapshot(t, dir), before) {
			t.Error("a recovery that could not be done changed files")
		}
		// Signing refuses too, and says why.
		if _, err := Sign(t.Context(), s.opts(), dir); !errors.As(err, &re) {
			t.Errorf("sign: %v", err)
		}
		t.Log(err)
	})
}

// TestRecoverySwappedDirectory: the directories a killed run's journal
// names, swapped for symbolic links to copies of them out of the tree
// (temporary files and backups included) once the recovery has checked
// them, make the recovery fail with nothing changed out there or in the
// tree; planted before the re-run, they stop it too. With the directories
// put back, the next recovery undoes the killed run.
func TestRecoverySwappedDirectory(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("SIGKILL")
	}
	canSymlink(t)
	s := newSigner(t)
	for _, when := range []string{"after the recovery checked them", "before the re-run"} {
		t.Run(when, func(t *testing.T) {
			dir := killedTree(t)
			originals := snapshot(t, dir)
			killSign(t, s, dir, "", "renaming", false)
			outside := copyTree(t, dir)
			outsideBefore := snapshot(t, outside)
			var treeBefore map[string][]byte
			moved := map[string]string{}
			swap := func() {
				for _, d := range []string{"d0", "d1", "d2"} {
					moved[d] = swapForLink(t, filepath.Join(dir, d), filepath.Join(outside, d))
				}
				treeBefore = snapshot(t, dir)
			}
			if when == "before the re-run" {
				swap()
			} else {
				atStage = func(stage string) {
					if stage == "recovering" && len(moved) == 0 {
						swap()
					}
				}
				t.Cleanup(func() { atStage = nil })
			}
			rec, err := RecoverSign(t.Context(), s.opts(), dir)
			atStage = nil
			if len(moved) == 0 {
				t.Fatalf("the recovery did not reach its changes: %+v, %v", rec, err)
			}
			if err == nil && (rec == nil || len(rec.Ignored) == 0) || rec != nil && len(rec.Runs) > 0 {
				t.Errorf("recovery through links out of the tree: %+v, %v", rec, err)
			}
			t.Log(err)
			checkUntouched(t, "out of the tree", outside, outsideBefore)
			checkUntouched(t, "the tree", dir, treeBefore)

			// Put back, the killed run is undone.
			for d, m := range moved {
				if err := os.Remove(filepath.Join(dir, d)); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(m, filepath.Join(dir, d)); err != nil {
					t.Fatal(err)
				}
			}
			rec, err = RecoverSign(t.Context(), s.opts(), dir)
			if err != nil || len(rec.Runs) != 1 || rec.Runs[0].Outcome != Restored {
				t.Fatalf("recovery with the directories back: %+v, %v", rec, err)
			}
			if !reflect.DeepEqual(snapshot(t, dir), originals) {
				t.Error("the tree is not as before the killed run")
			}
		})
	}
}

// FuzzJournal: parsing a journal, whatever its bytes, never panics, and
// returns records that pass their checks, or an error.
func FuzzJournal(f *testing.F) {
	f.Add([]byte(`{"kind":"run","v":1,"pid":7,"started":"2026-12-01T00:00:00Z"}
{"kind":"temp","temp":"d/.a.exe.csv-sign-0123456789ab","dest":"d/a.exe"}
{"kind":"place","temp":"d/.a.exe.csv-sign-0123456789ab","dest":"d/a.exe","backup":"d/.a.exe.csv-sign-aabbccddeeff","temp_id":{"dev":1,"ino":2,"size":3,"mtime_ns":4},"dest_id":{"dev":1,"ino":5,"size":6,"mtime_ns":7}}
{"kind":"commit","n":1}
{"kind":"done"}
`))
	f.Add([]byte(`{"kind":"run","v":1}
{"kind":"temp","temp":"../../etc/.passwd.csv-sign-0123456789ab","dest":"../../etc/passwd"}
{"kind":"temp","te`)) // torn last line
	f.Add([]byte(`{"kind":"temp","temp":"a","dest":"b"}`))
	f.Add([]byte(`{"kind":"run","v":2}` + "\n"))
	f.Add([]byte(`{"kind":"run","v":1,"extra":1}` + "\n"))
	f.Add([]byte(`{"kind":"run","v":1}{"kind":"done"}` + "\n"))
	f.Add([]byte(`{"kind":"run","v":1}` + "\n" + strings.Repeat("x", 70<<10) + "\n"))
	f.Add([]byte("\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := parseJournal(bytes.NewReader(data))
		panicerr.Check(t, err)
		if err != nil {
			if recs != nil || !errors.Is(err, errJournal) {
				t.Fatalf("records %v with error %v", recs, err)
			}
			return
		}
		for i := range recs {
			if err := recs[i].check(i == 0); err != nil {
				t.Fatalf("record %d passes parsing but not its check: %v", i, err)
			}
		}
		// Planning a recovery from it never panics either.
		tr, err := newSignTree(&SignOptions{}, []string{t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.close()
		planRecovery(tr, tr.journalDir(), recs)
	})
}
