"""Intel's SGX root of trust, as a constant (no file, no network).

`INTEL_SGX_ROOT_CA_DER` is "Intel SGX Root CA" (Intel Corporation, Santa Clara; valid
2018-05-21 to 2049-12-31), the same certificate dcap-qvl 0.7 builds in as its trust
anchor (its `src/TrustedRootCA.der`) and that Intel publishes at
https://certificates.trustedservices.intel.com/Intel_SGX_Provisioning_Certification_RootCA.pem.
SHA-256 of the DER: 44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3.

dcap-qvl verifies a hardware quote against its own copy; we keep ours to check that the
quote and the collateral carry exactly this root at the end of each chain (see `verify`).
A test holds the two copies to the same key.
"""

from __future__ import annotations

import base64

INTEL_SGX_ROOT_CA_DER: bytes = base64.b64decode(
    "MIICjzCCAjSgAwIBAgIUImUM1lqdNInzg7SVUr9QGzknBqwwCgYIKoZIzj0EAwIwaDEaMBgGA1UE"
    "AwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENvcnBvcmF0aW9uMRQwEgYDVQQH"
    "DAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJBgNVBAYTAlVTMB4XDTE4MDUyMTEwNDUxMFoX"
    "DTQ5MTIzMTIzNTk1OVowaDEaMBgGA1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUlu"
    "dGVsIENvcnBvcmF0aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJBgNV"
    "BAYTAlVTMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEC6nEwMDIYZOj/iPWsCzaEKi71OiOSLRF"
    "hWGjbnBVJfVnkY4u3IjkDYYL0MxO4mqsyYjlBalTVYxFP2sJBK5zlKOBuzCBuDAfBgNVHSMEGDAW"
    "gBQiZQzWWp00ifODtJVSv1AbOScGrDBSBgNVHR8ESzBJMEegRaBDhkFodHRwczovL2NlcnRpZmlj"
    "YXRlcy50cnVzdGVkc2VydmljZXMuaW50ZWwuY29tL0ludGVsU0dYUm9vdENBLmRlcjAdBgNVHQ4E"
    "FgQUImUM1lqdNInzg7SVUr9QGzknBqwwDgYDVR0PAQH/BAQDAgEGMBIGA1UdEwEB/wQIMAYBAf8C"
    "AQEwCgYIKoZIzj0EAwIDSQAwRgIhAOW/5QkR+S9CiSDcNoowLuPRLsWGf/Yi7GSX94BgwTwgAiEA"
    "4J0lrHoMs+Xo5o/sX6O9QWxHRAvZUGOdRQ7cvqRXaqI=",
    validate=True,
)
