package trust

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"time"
	"unicode/utf16"

	"github.com/foxboron/go-uefi/efi/signature"
	"github.com/foxboron/go-uefi/efi/util"
	"github.com/foxboron/go-uefi/efivar"
	"github.com/foxboron/go-uefi/pkcs7"
	"golang.org/x/crypto/cryptobyte"
)

// SignatureList returns an EFI signature list (EFI_SIGNATURE_LIST, the
// content of an .esl file) holding cert as its one EFI_CERT_X509 entry,
// owned by owner (the 16 bytes of the owner GUID as they appear on disk).
func SignatureList(owner [16]byte, cert *x509.Certificate) []byte {
	sl := signature.NewSignatureList(signature.CERT_X509_GUID)
	// AppendBytes fails only for entries of a different size, and the
	// list is empty.
	_ = sl.AppendBytes(guidFromBytes(owner), cert.Raw)
	return sl.Bytes()
}

// guidFromBytes turns on-disk (mixed-endian) GUID bytes into go-uefi's
// EFIGUID.
func guidFromBytes(b [16]byte) util.EFIGUID {
	g := util.EFIGUID{
		Data1: binary.LittleEndian.Uint32(b[0:]),
		Data2: binary.LittleEndian.Uint16(b[4:]),
		Data3: binary.LittleEndian.Uint16(b[6:]),
	}
	copy(g.Data4[:], b[8:])
	return g
}

// secureBootVariable returns the definition of a Secure Boot policy
// variable.
func secureBootVariable(name string) (efivar.Efivar, error) {
	switch name {
	case "PK":
		return efivar.PK, nil
	case "KEK":
		return efivar.KEK, nil
	case "db":
		return efivar.Db, nil
	case "dbx":
		return efivar.Dbx, nil
	}
	return efivar.Efivar{}, fmt.Errorf("EFI variable %q is not PK, KEK, db or dbx: %w", name, ErrUnsupported)
}

// AuthVariable returns the content of an .auth file: a time-based
// authenticated write of data (usually an EFI signature list) to the
// Secure Boot variable name ("PK", "KEK", "db" or "dbx") with timestamp
// ts, signed by signer, whose certificate is cert. It is an
// EFI_VARIABLE_AUTHENTICATION_2 header followed by data, as firmware's
// SetVariable() and systemd-boot's secure-boot-enroll take it. The PKCS#7
// signature has no signed attributes, so the result only depends on the
// inputs.
func AuthVariable(name string, data []byte, ts time.Time, signer crypto.Signer, cert *x509.Certificate) ([]byte, error) {
	v, err := secureBootVariable(name)
	if err != nil {
		return nil, err
	}
	if err := checkRSASigner(signer, cert); err != nil {
		return nil, err
	}
	ts = ts.UTC()
	if ts.Year() < 1900 || ts.Year() > 9999 {
		return nil, fmt.Errorf("timestamp %v outside the EFI_TIME range", ts)
	}
	t := util.EFITime{
		Year: uint16(ts.Year()), Month: uint8(ts.Month()), Day: uint8(ts.Day()),
		Hour: uint8(ts.Hour()), Minute: uint8(ts.Minute()), Second: uint8(ts.Second()),
	}

	// The signed data: VariableName (UTF-16LE, no NUL), VendorGuid,
	// Attributes, TimeStamp, Data.
	var tbs bytes.Buffer
	for _, u := range utf16.Encode([]rune(v.Name)) {
		binary.Write(&tbs, binary.LittleEndian, u)
	}
	binary.Write(&tbs, binary.LittleEndian, *v.GUID)
	binary.Write(&tbs, binary.LittleEndian, uint32(v.Attributes))
	binary.Write(&tbs, binary.LittleEndian, t)
	tbs.Write(data)

	p7, err := pkcs7.SignPKCS7(signer, cert, pkcs7.OIDData, tbs.Bytes(), pkcs7.NoAttr())
	if err != nil {
		return nil, fmt.Errorf("sign %s variable: %w", name, err)
	}
	// The variable carries the bare SignedData, without ContentInfo.
	s := cryptobyte.String(p7)
	_, signedData, err := pkcs7.ParseContentInfo(&s)
	if err != nil {
		return nil, fmt.Errorf("sign %s variable: %w", name, err)
	}

	var out bytes.Buffer
	binary.Write(&out, binary.LittleEndian, t)
	// WIN_CERTIFICATE_UEFI_GUID: dwLength, wRevision, wCertificateType,
	// CertType, CertData.
	binary.Write(&out, binary.LittleEndian, uint32(signature.SizeofWinCertificateUEFIGUID)+uint32(len(signedData)))
	binary.Write(&out, binary.LittleEndian, signature.WIN_CERTIFICATE_REVISION)
	binary.Write(&out, binary.LittleEndian, signature.WIN_CERT_TYPE_EFI_GUID)
	binary.Write(&out, binary.LittleEndian, signature.EFI_CERT_TYPE_PKCS7_GUID)
	out.Write(signedData)
	out.Write(data)
	return out.Bytes(), nil
}
