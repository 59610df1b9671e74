//! The SoftEther PACK decoder and the typed handshake messages read from
//! it: any bytes give an error or a PACK, never a panic or an allocation
//! out of proportion to the input; a decoded PACK re-encodes to one that
//! decodes to the same PACK, no longer than the input by more than one NUL
//! per UNISTR value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use switch_core::softether::message::{self, AdditionalConnect, Hello, Login, Method, Welcome};
use switch_core::softether::{HashedPassword, Pack, Values};

fuzz_target!(|data: &[u8]| {
    let Ok(p) = Pack::decode(data) else {
        return;
    };
    let bytes = p.to_bytes();
    assert_eq!(bytes.len(), p.encoded_len());
    let unistr_values: usize = p
        .elements()
        .iter()
        .map(|e| match e.values() {
            Values::UniStr(v) => v.len(),
            _ => 0,
        })
        .sum();
    assert!(bytes.len() <= data.len() + unistr_values);
    assert_eq!(Pack::decode(&bytes).as_ref(), Ok(&p));
    // Names are unique case-insensitively.
    for (i, e) in p.elements().iter().enumerate() {
        assert!(std::ptr::eq(p.get(e.name()).unwrap(), &p.elements()[i]));
    }
    // Every reader the handshakes use, on whatever the peer sent.
    let _ = (
        Method::of(&p),
        message::pack_error(&p),
        message::is_noop(&p),
    );
    let _ = Hello::from_pack(&p);
    let _ = Welcome::from_pack(&p);
    let _ = AdditionalConnect::from_pack(&p);
    if let Ok(login) = Login::from_pack(&p, [0; 20]) {
        let _ = login.check_password(&HashedPassword([1; 20]));
        assert_eq!(
            Login::from_pack(&login.to_pack(), [0; 20]).as_ref(),
            Ok(&login)
        );
    }
});
