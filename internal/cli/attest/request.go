package attest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/MakeNowJust/heredoc/v2"
	"github.com/google/go-tpm/tpm2"
	"github.com/spf13/cobra"

	"github.com/codesignval/csv/attest"
	"github.com/codesignval/csv/attest/client"
	"github.com/codesignval/csv/attest/service"
	"github.com/codesignval/csv/attest/wire"
	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/internal/textsafe"
	"github.com/codesignval/csv/signing"
)

// RequestOptions are the flags of csv attest request.
type RequestOptions struct {
	IO *cmdutil.IOStreams

	Server          string
	TPM             string
	EventLog        string
	EK              string
	AKType          string
	AKHandle        string
	CAFile          string
	Output          string
	Format          string
	Timeout         time.Duration
	PlaintextUnsafe bool

	akHandle tpm2.TPMHandle
}

// NewCmdRequest returns the request command. runF, if not nil, replaces
// the run function (for tests of flag parsing).
func NewCmdRequest(f *cmdutil.Factory, runF func(context.Context, *RequestOptions) error) *cobra.Command {
	o := &RequestOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "request --server URL --output FILE [flags]",
		Short: "Attest this host to an attestation service and receive its credential",
		Long: heredoc.Doc(`
			Attest this host to a csv attestation service (csv attest serve): open the TPM, load the
			endorsement key (and its certificate from NV) and create or load an attestation key,
			fetch a nonce, quote the PCRs the service asks for, submit the event log, quotes and keys,
			and, when the service trusts the host, activate the credential with the TPM
			(TPM2_ActivateCredential: only this TPM can) and write its payload to --output: a PEM AK
			certificate or a token. The service's report (every check, the claims) goes to stdout.

			The credential is written first, durably (a temporary file in the same directory, mode
			0600, synced, renamed over --output, the directory synced) and then the report: if the
			report cannot be written after that, csv warns, names the credential's path and exits 0.
			A service that answers with a redirect is not followed (the evidence would go wherever
			it points): give its final URL.

			--tpm takes the TPM device (/dev/tpmrm0, the kernel's resource manager) or the Unix
			socket of a TPM simulator (swtpm socket --tpm2 --server type=unixio,path=SOCKET
			--flags not-need-init,startup-clear); docs/attest-lab.md attests swtpm end to end.

			Exit status:
			  0  trusted: the credential was written
			  1  not trusted: the service refused (the report says which check failed and why)
			  2  could not attest: no TPM, no permission, the service unreachable or busy, an answer that
			     contradicts itself (a 200 without a credential, a 403 that says trusted), a usage error
		`),
		Example: cmdutil.Example(heredoc.Doc(`
			$ sudo csv attest request --server https://attest.example.com --output /run/host.token
			$ csv attest request --server https://127.0.0.1:8443 --ca-file ca.pem \
			    --tpm /tmp/swtpm/sock --eventlog boot.log --ak-handle 0x81000100 --output ak.pem
		`)),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runRequest(cmd.Context(), o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Server, "server", "", "the attestation service's `URL` (https://...)")
	fl.StringVar(&o.TPM, "tpm", client.DefaultDevice, "the TPM: a device or a simulator's Unix socket `PATH`")
	fl.StringVar(&o.EventLog, "eventlog", client.DefaultEventLog, "the TCG event log `FILE`")
	fl.StringVar(&o.EK, "ek", "auto", "the endorsement `KEY`: auto (the one with a certificate), rsa, ecc or ecc384")
	fl.StringVar(&o.AKType, "ak-type", "ecc", "the attestation key's `TYPE` when one is created: ecc (P-256) or rsa (2048)")
	fl.StringVar(&o.AKHandle, "ak-handle", "", "persistent `HANDLE` (0x81xxxxxx) to load the AK from, or to persist a new one at")
	fl.StringVar(&o.CAFile, "ca-file", "", "CA certificates `FILE` (PEM) to check the service's TLS certificate with (default: the system's)")
	fl.StringVarP(&o.Output, "output", "o", "", "`FILE` to write the credential to (mode 0600)")
	fl.StringVarP(&o.Format, "format", "f", "text", "report `FORMAT`: text or json")
	fl.DurationVar(&o.Timeout, "timeout", time.Minute, "give up after this `DURATION`")
	fl.BoolVar(&o.PlaintextUnsafe, "plaintext-unsafe", false, "allow an http:// service URL (tests): the verdict and credential travel unauthenticated")
	return cmd
}

func (o *RequestOptions) check() error {
	switch {
	case o.Server == "":
		return cmdutil.FlagErrorf("attest request: --server is required")
	case o.Output == "":
		return cmdutil.FlagErrorf("attest request: --output is required (where to write the credential)")
	case o.Format != "text" && o.Format != "json":
		return cmdutil.FlagErrorf("attest request: --format %q: want text or json", o.Format)
	case o.EK != "auto" && o.EK != string(client.RSA) && o.EK != string(client.ECC) && o.EK != string(client.ECCP384):
		return cmdutil.FlagErrorf("attest request: --ek %q: want auto, rsa, ecc or ecc384", o.EK)
	case o.AKType != string(client.ECC) && o.AKType != string(client.RSA):
		return cmdutil.FlagErrorf("attest request: --ak-type %q: want ecc or rsa", o.AKType)
	case o.Timeout <= 0:
		return cmdutil.FlagErrorf("attest request: --timeout must be positive")
	}
	u, err := url.Parse(o.Server)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return cmdutil.FlagErrorf("attest request: --server %q: want an https:// URL", o.Server)
	}
	if u.Scheme == "http" && !o.PlaintextUnsafe {
		return cmdutil.FlagErrorf("attest request: --server %q is not HTTPS (--plaintext-unsafe allows it)", o.Server)
	}
	if o.AKHandle != "" {
		h, err := strconv.ParseUint(o.AKHandle, 0, 32)
		if err != nil || h>>24 != 0x81 {
			return cmdutil.FlagErrorf("attest request: --ak-handle %q: want a persistent handle, 0x81000000 to 0x81FFFFFF", o.AKHandle)
		}
		o.akHandle = tpm2.TPMHandle(h)
	}
	return nil
}

func runRequest(ctx context.Context, o *RequestOptions) error {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	log, err := cmdutil.ReadFileCapped(o.EventLog, maxEventLogFile)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("cannot read event log %s: %w (it is readable by root only)", o.EventLog, err)
		}
		return fmt.Errorf("cannot read event log %s: %w", o.EventLog, err)
	}
	hc := &http.Client{Timeout: o.Timeout}
	if o.CAFile != "" {
		certs, err := signing.LoadX509CertificateFiles([]string{o.CAFile})
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		for _, c := range certs {
			pool.AddCert(c)
		}
		hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, Proxy: http.ProxyFromEnvironment}
	}
	t, err := client.Open(o.TPM)
	if err != nil {
		return err
	}
	defer t.Close()
	ek := client.KeyType(o.EK)
	if o.EK == "auto" {
		ek = ""
	}
	a, err := client.NewAttester(t, client.Options{EK: ek, AK: client.KeyType(o.AKType), AKHandle: o.akHandle})
	if err != nil {
		return err
	}
	defer a.Close()
	c := &client.Client{Attester: a, URL: o.Server, HTTP: hc, EventLog: log}
	out, err := c.Attest(ctx)
	return outcome(o, out, err)
}

// outcome reports what the exchange came to: a refusal (the service's
// report, then why on stderr; exit 1), a trusted host's credential
// (deliver), or an error (exit 2: among them an answer that contradicts
// itself, which the client never takes for a verdict).
func outcome(o *RequestOptions, out *client.Outcome, err error) error {
	var re *client.RefusedError
	if errors.As(err, &re) {
		if re.Response.Result != nil {
			if rerr := report(o.IO.Out, o.Format, re.Response); rerr != nil {
				return fmt.Errorf("writing the report: %w", rerr)
			}
		}
		textsafe.Linef(o.IO.ErrOut, "csv: %v", err) // the service's words: escaped
		return cmdutil.ErrFailed
	}
	if err != nil {
		return err
	}
	return deliver(o, out)
}

// deliver writes a trusted host's credential to --output and then the
// report: once the credential is written, failing to write the report is
// a warning naming the credential, not a failure that would hide it.
func deliver(o *RequestOptions, out *client.Outcome) error {
	payload := out.Payload
	cred := out.Response.Credential
	if cred.Format == service.FormatX509 {
		payload = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: payload})
	} else {
		payload = append(payload, '\n')
	}
	if err := writePrivate(o.Output, payload); err != nil {
		return fmt.Errorf("writing the credential: %w", err)
	}
	if err := report(o.IO.Out, o.Format, out.Response); err != nil {
		textsafe.Linef(o.IO.ErrOut, "csv: warning: writing the report: %v (the credential was written to %s)", err, o.Output)
	}
	textsafe.Linef(o.IO.ErrOut, "csv: trusted: credential (%s, expires %s) written to %s", cred.Format,
		cred.ExpiresAt.UTC().Format(time.RFC3339), o.Output)
	return nil
}

// fullResult reads the result a host received (package client leaves its
// claims as JSON, so the host agent links no policy engine) as the
// attest.Result csv attest verify renders.
func fullResult(r *wire.Result) (*attest.Result, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	var res attest.Result
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("the service's result: %w", err)
	}
	return &res, nil
}

// report writes the service's result as csv attest verify does: JSON as
// the service wrote it, or text.
func report(w io.Writer, format string, r *wire.AttestResponse) error {
	if r.Result == nil {
		return errors.New("the service's answer holds no result")
	}
	var raw struct {
		Result json.RawMessage `json:"result"`
	}
	if format == "json" && json.Unmarshal(r.Raw, &raw) == nil && len(raw.Result) > 0 {
		var b bytes.Buffer
		if err := json.Indent(&b, raw.Result, "", "  "); err != nil {
			return err
		}
		b.WriteByte('\n')
		_, err := w.Write(b.Bytes())
		return err
	}
	res, err := fullResult(r.Result)
	if err != nil {
		return err
	}
	// render prints the claims' PCR values (attest.PCRClaims decodes
	// what the service wrote), once.
	return render(w, format, res)
}

// writePrivate writes a file only its owner reads (the temporary file
// os.CreateTemp makes is 0600), atomically and durably: the data is synced
// before the rename, and the directory after it.
func writePrivate(path string, data []byte) error {
	return writeDurable(path, data, (*os.File).Sync, syncDir)
}

// writeDurable is writePrivate with its syncs given (tests record them).
func writeDurable(path string, data []byte, syncFile func(*os.File) error, syncDir func(string) error) error {
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() && !st.IsDir() {
		// A device or a named pipe (/dev/stdout): written to, never
		// replaced (see cmdutil.AtomicFile).
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		_, err = f.Write(data)
		return errors.Join(err, f.Close())
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := syncFile(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("syncing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("%s is written, but syncing its directory failed (a crash could lose it): %w", path, err)
	}
	return nil
}

// syncDir syncs a directory, so that a rename in it survives a crash,
// where the system can: not on Windows (FlushFileBuffers needs a handle
// open for writing, which a directory's is not), nor on file systems that
// do not sync directories (EINVAL).
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, errors.ErrUnsupported) {
		return nil
	}
	return err
}
