// Package limits holds the caps that every parser of untrusted bytes in csv
// applies. They live in one place so that a reviewer can see, and a test can
// assert, how much memory and work a hostile file can cost.
//
// A value over a cap is never truncated silently: the parser reports an error
// that names the cap, and the file is blocked.
package limits

const (
	// ReadBuffer is the size of the buffer each validation worker streams a
	// file through. Memory per worker is this buffer, whatever the file size.
	ReadBuffer = 256 << 10

	// MaxBinarySize is the largest file the validator will judge. Larger files
	// are blocked as unsupported rather than read for minutes.
	MaxBinarySize = 64 << 30

	// MaxPESections caps the COFF section count (the PE/COFF specification
	// allows up to 96 for images; Windows accepts more, we accept up to this).
	MaxPESections = 4096

	// MaxPEHeaderOffset caps e_lfanew: the NT headers must start within this
	// many bytes of the start of the file.
	MaxPEHeaderOffset = 64 << 20

	// MaxCertTable caps the PE attribute certificate table. Real tables are
	// tens of kilobytes; nested and dual signatures reach a few hundred.
	MaxCertTable = 16 << 20

	// MaxPageHashTable caps the page-hash table csv sign --page-hashes
	// puts in a PE signature: 36 bytes per 4 KiB page with SHA256, so 8 MiB
	// covers an image of some 900 MiB. A table a signature carries is
	// within MaxCertTable; checking it costs one hash of the image.
	MaxPageHashTable = 8 << 20

	// MaxCertEntries caps the number of WIN_CERTIFICATE entries in one table.
	MaxCertEntries = 64

	// MaxScriptSignatureBlock caps a script's signature block (PowerShell
	// "# SIG # Begin signature block" ... "# SIG # End signature block"),
	// as it is stored: base64 in comments, UTF-16 in a UTF-16 file. A
	// signature with its chain and a timestamp is about 10 KB of DER, some
	// 15 KB of block (30 KB in UTF-16); nested signatures add as much each.
	MaxScriptSignatureBlock = 4 << 20

	// MaxUnsignedAttributes caps the encoded unsigned attributes of one
	// SignerInfo (a signature's timestamp and the signatures nested in it),
	// which no signature covers. Debian's shim carries 6 KB per signature
	// (an RFC 3161 token with a three-certificate TSA chain); a nested
	// signature with its own timestamp adds about 10 KB.
	MaxUnsignedAttributes = 64 << 10

	// MaxUnknownUnsignedAttributes caps, in all, the encoded unsigned
	// attributes of one SignerInfo that csv does not read (anything but
	// nested signatures and timestamps in an Authenticode signer; every
	// unsigned attribute of a timestamp's signer, and of a kernel module
	// signature, which the kernel ignores).
	// Verifiers ignore them, so they can carry data no signature covers:
	// a short tag fits; a payload does not, nor the 1 KiB placeholder that
	// osslsigncode -addUnauthenticatedBlob writes (1041 bytes encoded) to
	// be filled with data after signing.
	MaxUnknownUnsignedAttributes = 1 << 10

	// MaxELFProgramHeaders and MaxELFSections cap the ELF header tables that
	// are read to check that the file is complete.
	MaxELFProgramHeaders = 1 << 16
	MaxELFSections       = 1 << 20

	// MaxPolicyFile caps a policy file (YAML or SiPolicy XML). Microsoft's
	// recommended block list is about 120 KB; generated hash policies for very
	// large builds reach a few megabytes.
	MaxPolicyFile = 64 << 20

	// MaxPolicyRules caps the number of rules in one policy.
	MaxPolicyRules = 1 << 20

	// MaxPolicyDepth caps the nesting depth of a policy document.
	MaxPolicyDepth = 32

	// MaxCertFile caps a certificate file (--certs, certificate_file): a
	// bundle of a few hundred certificates.
	MaxCertFile = 4 << 20

	// MaxBootComponents caps the boot components (images and drivers
	// measured into PCRs 2 and 4) of one attested boot that a code
	// integrity policy judges, and MaxBootAuthorities the distinct Secure
	// Boot authorities (EV_EFI_VARIABLE_AUTHORITY certificates and hashes
	// in PCR 7) each is judged with. Real boots have a few tens of
	// components (38 in the largest log of the test data) and at most a few
	// authorities (3). A boot over either is not judged: the
	// boot-components check fails, saying which cap. The caps bound the
	// claims too, which list each component's authorities.
	MaxBootComponents  = 1024
	MaxBootAuthorities = 32

	// MaxSIPolicyName caps the policy name of a WBCL SI policy event
	// (SIPAEVENT_SI_POLICY), in UTF-16 bytes: names and GUIDs are tens of
	// characters. MaxActiveCIPolicies caps the distinct SI policy events
	// of one boot (hosts run a few policies; Windows once allowed 32).
	MaxSIPolicyName     = 1024
	MaxActiveCIPolicies = 256
)

// CertCacheEntries caps the certificates, and the chain searches, one
// run's certificate cache (signing.CertCache) keeps; a build's
// files share a handful of chains, so the cap is met only by hostile input
// (an arbitrary entry then makes room). CertCacheMaxCert is the largest
// certificate DER it keeps (larger ones are parsed every time they are
// met).
const (
	CertCacheEntries = 4096
	CertCacheMaxCert = 64 << 10
)

// MaxLinkedEntries caps the directory entries the validator lists through
// symbolic links to directories, beyond the walk of the tree itself (files
// reached through a link that the filters or the policy's path scopes judge
// differently from where they lie). Links that lead into each other can
// reach a number of paths exponential in their count; past the cap, the
// link is blocked.
const MaxLinkedEntries = 1 << 20

// MaxJournalSize, MaxJournalLine and MaxJournalRecords cap a signing
// journal read to recover a killed csv sign (csv/journal.go): a run writes
// about two records of a few hundred bytes per file it signs.
const (
	MaxJournalSize    = 1 << 30
	MaxJournalLine    = 64 << 10
	MaxJournalRecords = 1 << 22
)

// MaxCatalogFile, MaxCatalogMembers, MaxCatalogAttributes and
// MaxCatalogAttribute cap a security catalog (.cat): the file, the members
// of its certificate trust list, the attributes of one member (or of the
// catalog), and one attribute's encoding. Windows' largest catalogs
// (nt5.cat, the servicing packages') are a few megabytes with tens of
// thousands of members of three or four attributes of under 200 bytes.
const (
	MaxCatalogFile       = 64 << 20
	MaxCatalogMembers    = 1 << 20
	MaxCatalogAttributes = 64
	MaxCatalogAttribute  = 64 << 10
)

// Containers (archives, packages, images, compressed files): the defaults
// of container.Limits, which the CLI's --max-container-* flags raise.
const (
	// MaxMemberName caps a member's name (Linux's PATH_MAX is 4096): a
	// longer one is a finding, and is not kept.
	MaxMemberName = 4096
	// MaxContainerDepth caps nesting: a zip in a tar.gz in a deb is depth 3.
	MaxContainerDepth = 8
	// MaxContainerMembers caps the members of one container. A Debian
	// kernel image package holds some 6,000 files; a node_modules zip
	// some 100,000.
	MaxContainerMembers = 1 << 20
	// MaxContainerSize caps the bytes one container found on disk
	// decompresses to, with everything nested in it.
	MaxContainerSize = 64 << 30
	// MaxContainerRatio caps decompressed bytes per compressed byte (per
	// member, and per compressed container stream) past
	// ContainerRatioGrace: deflate reaches 1032:1 at most, so zip bombs of
	// overlapping or nested streams show as a ratio past this.
	MaxContainerRatio   = 1100
	ContainerRatioGrace = 1 << 20
	// MaxMemberInMemory caps a member of a streamed container that must be
	// held in memory to be judged (a binary, which parsers read by random
	// access, or a nested container).
	MaxMemberInMemory = 256 << 20
	// StreamMember is the size over which a member of a container is
	// inspected as it streams by, once, front to back, rather than held in
	// memory for the handlers' random access, when its format's handler
	// can (format.Streamer): what the handler reads out of order (a PE's
	// certificate table and resource section, an ELF file's header tables
	// and appended signature) is kept as it passes, up to MaxStreamKept
	// bytes, and the first StreamHead bytes are kept whole.
	StreamMember = 16 << 20
	// RunMemory is the memory csv validate lets the Go runtime use beyond
	// what it loaded before the run (the policy, certificates) before its
	// garbage collector works harder (internal/cli/cmdutil.MemoryLimit):
	// the run's buffers, members waiting for a worker (16 MiB) and the
	// buffers kept for them (8 MiB), decompressors' windows, and the
	// collector's headroom.
	RunMemory     = 64 << 20
	MaxStreamKept = 16 << 20
	StreamHead    = 64 << 10
	// MaxContainerWindow caps a compressed stream's window: a zstd
	// frame's window, an xz or lzma dictionary, which the decoder
	// allocates as the header says. xz -9 uses 64 MiB, zstd -19 8 MiB;
	// zstd --ultra -22 and --long (128 MiB) are refused.
	MaxContainerWindow = 64 << 20
)

// MaxRPMHeaderEntries and MaxRPMHeaderData cap one header structure of an
// RPM package (the signature header or the main header): its index entries
// and its data store. rpm itself refuses more than 65,535 entries
// (hdrchkTags); a kernel package's main header, the largest in a
// distribution, holds some 10,000 files' metadata in a few MiB.
// MaxRPMCpioName caps a payload member's name (PATH_MAX).
const (
	MaxRPMHeaderEntries = 1<<16 - 1
	MaxRPMHeaderData    = 64 << 20
	MaxRPMCpioName      = 4096
)

// MaxImageManifest caps one JSON document of a container image (docker
// save's manifest.json, an OCI index or manifest, an image config is not
// read): real ones are a few KiB. MaxImageLayers caps the layers of one
// image and MaxImageBlobs the blobs an image tarball may hold.
const (
	MaxImageManifest = 4 << 20
	MaxImageLayers   = 1024
	MaxImageBlobs    = 1 << 16
)

// Cabinets (.cab, container/cab): MaxCabBlock is what one CFDATA block
// decompresses to at most (CB_MAX_CHUNK, 32 KiB), MaxCabBlockData what it
// stores (the block plus LZX's worst-case growth, 6 KiB, as libmspack
// allows); MaxCabName caps a member's stored name (CB_MAX_FILENAME) and
// MaxCabSetName the name of a previous or next cabinet or disk
// (CB_MAX_CABINET_NAME, the NUL included); MaxCabHeaderReserve caps the
// header's reserved area (the MS-CAB specification's 60,000 bytes).
const (
	MaxCabBlock         = 32 << 10
	MaxCabBlockData     = MaxCabBlock + 6144
	MaxCabName          = 256
	MaxCabSetName       = 256
	MaxCabHeaderReserve = 60000
)

// MaxCabSignature caps the Authenticode signature a cabinet's header
// reserve names (read whole to be parsed), as MaxCertTable caps a PE's.
const MaxCabSignature = 16 << 20

// Compound files (OLE/CFB: MSI installers) and MSI signatures.
// MaxCFBDirectoryEntries caps a compound file's directory: an MSI holds
// one entry per table and per binary stream, a few hundred in large
// installers. MaxMSISignature caps the \x05DigitalSignature stream (an
// Authenticode signature, certificates and timestamps: some KiB).
const (
	MaxCFBDirectoryEntries = 1 << 16
	MaxMSISignature        = 4 << 20
)

// An installer's database tables, read to know where its files come from
// (container/msi): MaxMSIStringPool caps the _StringPool stream (4 bytes a
// string: a million strings; large installers hold some tens of
// thousands), MaxMSITable every other table stream csv reads (_StringData,
// _Columns, Media, File: a File table of 100,000 files is about 3 MiB),
// MaxMSIMedia the Media table's rows (DiskId is a 16-bit key).
const (
	MaxMSIStringPool = 4 << 20
	MaxMSITable      = 32 << 20
	MaxMSIMedia      = 1 << 15
)

// MaxDetachedSignature caps a detached PKCS#7 signature read from a
// sidecar file: an fs-verity built-in signature (FILE.fsv.sig) or a
// dm-verity root hash's (IMAGE.roothash.p7s). `fsverity sign` and openssl
// -nocerts write well under 1 KiB; a few embedded certificates fit.
const MaxDetachedSignature = 64 << 10

// MaxVeritySalt caps a dm-verity superblock's salt (its field holds 256
// bytes; veritysetup accepts up to that).
const MaxVeritySalt = 256

// MaxVerityBlockSize caps a dm-verity tree's data and hash block sizes
// (veritysetup takes powers of two from 512 bytes; the kernel takes data
// blocks up to the page size and hash blocks up to it too).
const MaxVerityBlockSize = 1 << 20

// MaxVerityDataSize caps the data a dm-verity superblock may describe
// (data_blocks times the block size): 16 TiB, far above any image a build
// ships.
const MaxVerityDataSize = 1 << 44

// MaxIMAValue caps a security.ima value (an extended attribute, a sidecar
// FILE.sig or a tar member's PAX record) that csv reads: the largest real
// ones, RSA-16384 signatures, are 2,057 bytes, and ECDSA ones under 150.
const MaxIMAValue = 8 << 10

// MaxIPELines, MaxIPELine and MaxIPERuleProperties cap an IPE policy (the
// Linux kernel's Integrity Policy Enforcement text format) beyond
// MaxPolicyFile: the lines of the file, the bytes of one line, and the
// properties of one rule. A generated policy holds a rule per file of a
// build (some 100 bytes each: a SHA-256 fs-verity digest in hex and the
// op and action); no real rule has more than a handful of properties. The
// rules of a policy are capped by MaxPolicyRules.
const (
	MaxIPELines          = 1 << 20
	MaxIPELine           = 4 << 10
	MaxIPERuleProperties = 64
)

// MaxSuppressionFile, MaxSuppressions, MaxSuppressionText and
// MaxSuppressionDepth cap a suppressions file (csv validate
// --suppressions: csv's YAML or Microsoft Guardian's .gdnsuppress JSON):
// its bytes, its entries (a Guardian file of a large repository holds some
// thousands, 400 KB), the bytes of one string in it (a justification, a
// path glob) and its nesting (a Guardian file nests four levels).
const (
	MaxSuppressionFile  = 16 << 20
	MaxSuppressions     = 1 << 16
	MaxSuppressionText  = 4 << 10
	MaxSuppressionDepth = 16
)

// MSIX/APPX packages (signing/authenticode/appx). MaxAPPXSignature caps
// AppxSignature.p7x (an Authenticode signature: some KiB);
// MaxAPPXBlockMap caps AppxBlockMap.xml (some 60 bytes per 64 KiB block
// and 150 per file: 8 MiB for a 4 GiB package of 20,000 files);
// MaxAPPXPart the other parts read whole ([Content_Types].xml,
// AppxManifest.xml); MaxAPPXCodeIntegrity AppxMetadata/CodeIntegrity.cat,
// which is hashed as a stream, not held; MaxAPPXBlockMapDepth the nesting
// of the block map's elements (it has three levels).
const (
	MaxAPPXSignature     = 4 << 20
	MaxAPPXBlockMap      = 64 << 20
	MaxAPPXPart          = 4 << 20
	MaxAPPXCodeIntegrity = 256 << 20
	MaxAPPXBlockMapDepth = 8
)

// MaxTPMResponse caps the response a TPM simulator's socket may declare
// (a 10-byte header whose size counts the whole response). TPM 2.0
// responses fit in MAX_RESPONSE_SIZE, 4 KiB on swtpm; the client reads a
// response by its declared size, so a larger claim is refused before any
// buffer is sized by it.
const MaxTPMResponse = 64 << 10

// Facts files (csv/facts, docs/facts.md): facts recorded elsewhere, read
// as untrusted data. MaxFactsLine caps one line (the header or one
// record): a signed PE file's record with its chain and a timestamp is
// some 8 KiB, a file with several signatures and catalog signatures a few
// tens. MaxFactsRecords caps the records of one facts file (a build of a
// million files is well within). MaxFactsCertificates caps the distinct
// certificates of one record, MaxFactsSignatures its signatures (its own
// and those of the catalogs it is a member of), MaxFactsChains the chains
// of one signature or timestamp and MaxFactsChainDepth their length (as
// signing.BuildChains builds at most 8 of depth 10). MaxFactsCertificate
// caps one certificate's DER. MaxFactsText caps a string fact (a path, a
// problem, a version-resource string).
const (
	MaxFactsLine         = 4 << 20
	MaxFactsRecords      = 1 << 27
	MaxFactsCertificates = 256
	MaxFactsSignatures   = 256
	MaxFactsChains       = 8
	MaxFactsChainDepth   = 10
	MaxFactsCertificate  = 64 << 10
	// MaxFactsFileCertificates caps the certificates the certificate
	// lines of one facts file define (a build's files share a few
	// chains; a fleet's, some thousands), and the certificate lines.
	MaxFactsFileCertificates = 1 << 16
	// MaxFactsCertificateBytes caps the bytes of DER the certificate
	// lines of one facts file define (the count alone allows 4 GiB).
	MaxFactsCertificateBytes = 64 << 20
	MaxFactsText             = 64 << 10
	// MaxFactsDecompressed caps what a gzip-compressed facts file
	// decompresses to (a gzip bomb is refused there): a million records
	// of a build are some 350 MB, MaxFactsRecords of them some 47 GB.
	MaxFactsDecompressed = 64 << 30
)

// Caps of csv triage's readers of Windows Code Integrity event exports
// (csv/triage): MaxEventFile the size of one export (Get-WinEvent |
// ConvertTo-Json, wevtutil qe /f:xml); MaxEvents the events (of any ID)
// in one file; MaxEventFields the fields (<Data> elements, Properties) of
// one event, which are 36 for a 3077 event of template version 5;
// MaxEventField the bytes of one field's value (an NT path is at most
// 32,767 UTF-16 units, under 96 KiB of UTF-8). A file or event over a cap
// is an error that names it, never truncated.
const (
	MaxEventFile   = 256 << 20
	MaxEvents      = 1 << 20
	MaxEventFields = 256
	MaxEventField  = 128 << 10
	// MaxEventSignatures caps the signature events (3089) attached to one
	// block or audit event: a file has a few.
	MaxEventSignatures = 64
	// MaxEventJSONDepth caps how deep arrays and objects nest in a JSON
	// export (Get-WinEvent | ConvertTo-Json -Depth 4 writes 5 levels);
	// MaxEventXMLDepth how deep elements nest in an XML event (<Event>
	// <System> <Provider> is 3). Deeper is an error that ends the reading
	// of the export: skipping it would take a stack as deep.
	MaxEventJSONDepth = 32
	MaxEventXMLDepth  = 16
	// MaxEventXMLToken caps the bytes of one XML token (a tag with its
	// attributes, a run of text): encoding/xml materializes a token whole
	// before it can be looked at. Over it, the rest of the export is
	// unread.
	MaxEventXMLToken = 1 << 20
)
