//! A test CA and a server certificate for "localhost", made with rcgen:
//! `ca.pem`, `NAME.pem` and `NAME.key` in a folder.
#![allow(dead_code)]

use std::path::Path;

pub fn write_certificates(root: &Path, name: &str) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ticketd test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(root.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(root.join(format!("{name}.pem")), cert.pem()).unwrap();
    std::fs::write(root.join(format!("{name}.key")), key.serialize_pem()).unwrap();
}
