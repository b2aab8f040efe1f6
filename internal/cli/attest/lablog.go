package attest

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/MakeNowJust/heredoc/v2"
	"github.com/spf13/cobra"

	"github.com/codesignval/csv/attest/bootlog"
	"github.com/codesignval/csv/attest/client"
	"github.com/codesignval/csv/attest/lab"
	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/internal/textsafe"
	"github.com/codesignval/csv/signing"
)

// LabLogOptions are the flags of csv attest lab-log.
type LabLogOptions struct {
	IO       *cmdutil.IOStreams
	TPM      string
	Out      string
	Apps     []string
	PK       []string
	KEK      []string
	DB       []string
	CertsDir string
}

// NewCmdLabLog returns the lab-log command. runF, if not nil, replaces the
// run function.
func NewCmdLabLog(f *cmdutil.Factory, runF func(*LabLogOptions) error) *cobra.Command {
	o := &LabLogOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "lab-log --tpm SOCKET --app FILE... --out FILE [--pk FILE] [--kek FILE] [--db FILE] [--certs-dir DIR]",
		Short: "Fake a UEFI Secure Boot on a software TPM (swtpm) and write its event log, for labs",
		Long: heredoc.Doc(`
			For labs only: fake a measured boot on a software TPM, so that csv attest request can
			attest a machine without firmware. lab-log extends into swtpm's PCRs what UEFI firmware
			would measure (the firmware version, Secure Boot on with the PK, KEK, db and dbx given,
			separators in PCRs 0-7, each --app as a boot application admitted by db, ExitBootServices)
			in every active PCR bank, checks that the TPM then holds what the log replays to, and
			writes the matching TCG crypto-agile event log to --out.

			The measurements are made up: a software TPM proves nothing about any machine. lab-log
			takes only a Unix socket (swtpm socket --server type=unixio,path=SOCKET) whose TPM says
			it is swtpm, never a TPM device: extending a real TPM's PCRs would make its host's
			attestations and the secrets sealed to them fail until it reboots. It fakes one boot per
			TPM reset: on a TPM whose PCRs are not at their reset values it refuses (restart swtpm).

			--app is a PE image (a UEFI application: systemd-bootx64.efi, shimx64.efi); its
			Authenticode digests are its measurements, as firmware's, so that a code integrity
			policy's hash rules for the file allow it. Without --pk, --kek or --db, lab-log makes a
			self-signed certificate for each (its key is thrown away) and writes it to --certs-dir
			as pk.pem, kek.pem or db.pem, or uses the one already there, so that the attestation
			policy can name them.

			Exit status: 0 the boot was faked and the log written; 2 it was not (usage, a file
			that cannot be read, not a swtpm socket, PCRs not reset, a TPM error).
		`),
		Example: heredoc.Doc(`
			$ csv attest lab-log --tpm tpm/sock --app /usr/lib/systemd/boot/efi/systemd-bootx64.efi --out boot.log
		`),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case o.TPM == "":
				return cmdutil.FlagErrorf("attest lab-log: --tpm is required (the swtpm Unix socket)")
			case o.Out == "":
				return cmdutil.FlagErrorf("attest lab-log: --out is required")
			case len(o.Apps) == 0:
				return cmdutil.FlagErrorf("attest lab-log: --app is required (a boot with Secure Boot on loads at least one boot application)")
			}
			if o.CertsDir == "" {
				o.CertsDir = filepath.Dir(o.Out)
			}
			if runF != nil {
				return runF(o)
			}
			return runLabLog(o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.TPM, "tpm", "", "the swtpm Unix `SOCKET` (swtpm socket --server type=unixio,path=SOCKET)")
	fl.StringVar(&o.Out, "out", "", "write the event log to `FILE`")
	fl.StringArrayVar(&o.Apps, "app", nil, "a boot application `FILE` (a PE image) to measure in PCR 4 (at least one); repeatable")
	fl.StringArrayVar(&o.PK, "pk", nil, "a PK certificate `FILE` (PEM or DER); repeatable (default: pk.pem in --certs-dir, made if missing)")
	fl.StringArrayVar(&o.KEK, "kek", nil, "a KEK certificate `FILE`; repeatable (default: kek.pem in --certs-dir, made if missing)")
	fl.StringArrayVar(&o.DB, "db", nil, "a db certificate `FILE`; repeatable (default: db.pem in --certs-dir, made if missing)")
	fl.StringVar(&o.CertsDir, "certs-dir", "", "where made certificates are written and looked for (default: the directory of --out)")
	return cmd
}

func runLabLog(o *LabLogOptions) error {
	// Refuse a device (or anything but a socket) before opening it: a real
	// TPM must never be extended with made-up measurements.
	st, err := os.Stat(o.TPM)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("attest lab-log: no swtpm socket at %s (start swtpm socket --tpm2 --server type=unixio,path=%s --flags not-need-init,startup-clear)", o.TPM, o.TPM)
	case err != nil:
		return fmt.Errorf("attest lab-log: %w", err)
	case st.Mode()&fs.ModeSocket == 0:
		return fmt.Errorf("attest lab-log: %s is not a Unix socket: lab-log fakes a boot on a software TPM (swtpm) only, never on a TPM device, whose host's measurements it would falsify", o.TPM)
	}
	var apps []bootlog.App
	for _, f := range o.Apps {
		a, err := lab.App(f, `\EFI\BOOT\`+filepath.Base(f))
		if err != nil {
			return fmt.Errorf("attest lab-log: --app %w", err)
		}
		apps = append(apps, a)
	}
	opts := bootlog.Options{Firmware: "csv attest lab-log (a faked boot)", SecureBoot: true, Apps: apps}
	var made []string
	for _, c := range []struct {
		flag  []string
		file  string
		cn    string
		certs *[]*x509.Certificate
	}{{o.PK, "pk.pem", "csv lab PK", &opts.PK}, {o.KEK, "kek.pem", "csv lab KEK", &opts.KEK}, {o.DB, "db.pem", "csv lab db", &opts.DB}} {
		files := c.flag
		if len(files) == 0 {
			p := filepath.Join(o.CertsDir, c.file)
			if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
				cert, err := lab.NewCertificate(c.cn)
				if err != nil {
					return err
				}
				if err := cmdutil.WriteFileAtomic(p, pemCertificate(cert.Raw)); err != nil {
					return fmt.Errorf("attest lab-log: writing %s: %w", p, err)
				}
				made = append(made, p)
			}
			files = []string{p}
		}
		certs, err := signing.LoadX509CertificateFiles(files)
		if err != nil {
			return fmt.Errorf("attest lab-log: %w", err)
		}
		*c.certs = certs
	}
	t, err := client.Open(o.TPM)
	if err != nil {
		return err
	}
	defer t.Close()
	raw, err := lab.Boot(t, opts)
	if err != nil {
		return fmt.Errorf("attest lab-log: %s: %w", o.TPM, err)
	}
	if err := cmdutil.WriteFileAtomic(o.Out, raw); err != nil {
		return fmt.Errorf("attest lab-log: the boot is faked on %s, but writing its log failed (restart swtpm and run this again): %w", o.TPM, err)
	}
	var b strings.Builder
	for _, m := range made {
		textsafe.Linef(&b, "made %s (a lab certificate; nothing signs with it)", m)
	}
	textsafe.Linef(&b, "faked a Secure Boot on the software TPM at %s: wrote %s (%d bytes)", o.TPM, o.Out, len(raw))
	for i, a := range apps {
		textsafe.Linef(&b, "boot application %s: pcr4/EV_EFI_BOOT_SERVICES_APPLICATION/%d, authenticode sha256 %x", o.Apps[i], i+1, a.SHA256)
	}
	_, err = fmt.Fprint(o.IO.Out, b.String())
	return err
}

func pemCertificate(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
