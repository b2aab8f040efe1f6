// Package kmsproviders links sigstore's KMS providers (AWS, Google Cloud,
// Azure, HashiCorp Vault and OpenBao) into a binary: imported for its side
// effect, it registers their key reference schemes with kms.Get, which
// package keys then loads KMS keys through. Only cmd/csv-kms (and tests)
// import it: the cloud SDKs are most of that binary's size and start-up
// time, which csv itself does without.
package kmsproviders

import (
	// The KMS providers register their schemes with kms.Get.
	_ "github.com/sigstore/sigstore/pkg/signature/kms/aws"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/azure"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/gcp"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/hashivault"
)
