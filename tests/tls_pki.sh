#!/bin/sh
# tests/tls_pki.sh DIR: a throw-away PKI for the TLS tests, made with the
# openssl command (nothing secret is kept in the tree). Idempotent: a DIR that
# already has its stamp file is left as it is.
#
#   ca.pem ca.key             the test CA
#   server.pem server.key     ECDSA P-256 leaf for localhost, 127.0.0.1, ::1,
#                             signed by the CA (server.pem: leaf, then the CA)
#   server-rsa.pem .key       the same with RSA-2048
#   expired.pem .key          CA-signed leaf for localhost, expired in 2020
#   wronghost.pem .key        CA-signed leaf for other.example only
#   selfsigned.pem .key       self-signed leaf for localhost (no CA)
#   client.pem client.key     CA-signed client certificate (CN=client)
#   client-self.pem .key      self-signed client certificate
#   other-ca.pem              a second CA that signed nothing here
set -eu
dir=${1:?usage: tls_pki.sh DIR}
[ -f "$dir/.stamp" ] && exit 0
mkdir -p "$dir"
cd "$dir"

conf=openssl.cnf
cat > $conf <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = coreio test
[ca]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
[wronghost]
basicConstraints = CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:other.example
[client]
basicConstraints = CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
EOF

ec_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# CA NAME CN: a self-signed CA.
ca() {
    ec_key "$1.key"
    openssl req -new -x509 -key "$1.key" -subj "/CN=$2" -days 3650 -config $conf \
        -extensions ca -out "$1.pem"
}

# leaf NAME CN EXT [openssl x509 dates...]: a CA-signed leaf.
leaf() {
    name=$1 cn=$2 ext=$3
    shift 3
    [ -f "$name.key" ] || ec_key "$name.key"
    openssl req -new -key "$name.key" -subj "/CN=$cn" -config $conf -out "$name.csr"
    openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
        -extfile $conf -extensions "$ext" -out "$name.pem" "$@" 2>/dev/null
    rm -f "$name.csr"
}

ca ca "coreio test CA"
ca other-ca "coreio other CA"
leaf server localhost server -days 3650
cat ca.pem >> server.pem
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out server-rsa.key 2>/dev/null
leaf server-rsa localhost server -days 3650
cat ca.pem >> server-rsa.pem
leaf wronghost other.example wronghost -days 3650
leaf client client client -days 3650
# Expired: valid for one day in 2020 (openssl x509 -not_before needs 3.4, so
# the CA signs with a fixed start through the ca command's -startdate).
ec_key expired.key
openssl req -new -key expired.key -subj "/CN=localhost" -config $conf -out expired.csr
mkdir -p ca.db
: > ca.db/index.txt
echo 01 > ca.db/serial
cat > ca.cnf <<'EOF'
[ca]
default_ca = test
[test]
database = ca.db/index.txt
serial = ca.db/serial
new_certs_dir = ca.db
default_md = sha256
policy = any
copy_extensions = none
[any]
commonName = supplied
EOF
openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -in expired.csr \
    -startdate 20200101000000Z -enddate 20200102000000Z -extfile $conf -extensions server \
    -out expired.pem -notext 2>/dev/null
rm -f expired.csr
for name in selfsigned client-self; do
    ec_key "$name.key"
    ext=server
    [ $name = client-self ] && ext=client
    openssl req -new -x509 -key "$name.key" -subj "/CN=localhost" -days 3650 -config $conf \
        -extensions $ext -addext "subjectAltName = DNS:localhost, IP:127.0.0.1" -out "$name.pem"
done
touch .stamp
