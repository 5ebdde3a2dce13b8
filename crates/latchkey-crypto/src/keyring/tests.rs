//! Tests of the parent module.

use proptest::prelude::*;

use super::*;

fn ring() -> Keyring {
    Keyring::new(MasterKey::generate(), Vec::new())
}

fn aad() -> Aad {
    Aad::new("connections", "refresh_token", "42")
}

proptest! {
    #[test]
    fn seal_then_open_gives_back_the_plaintext(
        plaintext in proptest::collection::vec(any::<u8>(), 0..512),
        table in "[a-z_]{0,16}",
        column in "[a-z_]{0,16}",
        row_id in any::<String>(),
    ) {
        let ring = ring();
        let aad = Aad::new(&table, &column, &row_id);
        let sealed = ring.seal(&plaintext, &aad);
        prop_assert_eq!(sealed.as_bytes().len(), HEADER_LEN + plaintext.len() + TAG_LEN);
        prop_assert_eq!(Keyring::key_id_of(&sealed), Some(ring.current_id()));
        let opened = ring.open(&sealed, &aad).map(|plain| plain.to_vec());
        prop_assert_eq!(opened, Ok(plaintext));
    }

    #[test]
    fn any_flipped_bit_is_detected(index in any::<prop::sample::Index>(), bit in 0_u8..8) {
        let ring = ring();
        let mut sealed = ring.seal(b"a refresh token", &aad());
        let at = index.index(sealed.0.len());
        sealed.0[at] ^= 1 << bit;
        let err = ring.open(&sealed, &aad()).expect_err("a changed value must not open");
        match at {
            0 => prop_assert_eq!(err, CryptoError::Malformed),
            1..PREFIX_LEN => prop_assert!(matches!(err, CryptoError::UnknownKey { .. }), "{:?}", err),
            _ => prop_assert_eq!(err, CryptoError::Tampered),
        }
    }
}

#[test]
fn secrets_round_trip() {
    let ring = ring();
    let secret = Secret::new("ya29.a0-access-token");
    let sealed = ring.seal_secret(&secret, &aad());
    assert_eq!(ring.open_secret(&sealed, &aad()), Ok(secret));
}

#[test]
fn non_utf8_plaintext_is_not_a_secret() {
    let ring = ring();
    let sealed = ring.seal(&[0xff, 0xfe], &aad());
    assert_eq!(ring.open_secret(&sealed, &aad()), Err(CryptoError::Malformed));
}

#[test]
fn a_value_moved_to_another_row_or_column_does_not_open() {
    let ring = ring();
    let sealed = ring.seal(b"token", &Aad::new("connections", "access_token", "1"));
    for other in [
        Aad::new("connections", "access_token", "2"),
        Aad::new("connections", "refresh_token", "1"),
        Aad::new("providers", "access_token", "1"),
    ] {
        assert_eq!(ring.open(&sealed, &other), Err(CryptoError::Tampered), "{other:?}");
    }
}

#[test]
fn short_or_unknown_version_is_malformed() {
    let ring = ring();
    for bytes in [Vec::new(), vec![FORMAT_VERSION; HEADER_LEN + TAG_LEN - 1]] {
        assert_eq!(ring.open(&Sealed(bytes.clone()), &aad()), Err(CryptoError::Malformed));
        assert_eq!(Keyring::key_id_of(&Sealed(bytes)), None);
    }
    let mut sealed = ring.seal(b"x", &aad());
    sealed.0[0] = 2;
    assert_eq!(ring.open(&sealed, &aad()), Err(CryptoError::Malformed));
}

#[test]
fn a_key_outside_the_ring_is_named() {
    let other = ring();
    let sealed = other.seal(b"x", &aad());
    assert_eq!(ring().open(&sealed, &aad()), Err(CryptoError::UnknownKey { key_id: other.current_id() }));
}

#[test]
fn older_keys_still_open_after_rotation() {
    let old_key = MasterKey::generate();
    let old_ring = Keyring::new(old_key.clone(), Vec::new());
    let before = old_ring.seal(b"sealed before rotation", &aad());

    let new_key = MasterKey::generate();
    let rotated = Keyring::new(new_key.clone(), vec![old_key.clone(), new_key.clone()]);
    assert_eq!(rotated.current_id(), new_key.id());
    assert_eq!(rotated.key_ids(), vec![new_key.id(), old_key.id()]);
    assert_eq!(rotated.open(&before, &aad()).map(|p| p.to_vec()), Ok(b"sealed before rotation".to_vec()));

    let after = rotated.seal(b"sealed after rotation", &aad());
    assert_eq!(Keyring::key_id_of(&before), Some(old_key.id()));
    assert_eq!(Keyring::key_id_of(&after), Some(new_key.id()));
    assert!(matches!(old_ring.open(&after, &aad()), Err(CryptoError::UnknownKey { .. })));
}

#[test]
fn two_seals_of_the_same_plaintext_differ() {
    let ring = ring();
    let first = ring.seal(b"same", &aad());
    let second = ring.seal(b"same", &aad());
    assert_ne!(first, second);
    assert_ne!(first.0[PREFIX_LEN..HEADER_LEN], second.0[PREFIX_LEN..HEADER_LEN]);
}

#[test]
fn key_check_accepts_the_right_key_and_names_the_wrong_one() {
    let right = MasterKey::generate();
    let check = Keyring::new(right.clone(), Vec::new()).make_key_check();

    let rotated = Keyring::new(MasterKey::generate(), vec![right.clone()]);
    assert_eq!(rotated.verify_key_check(&check), Ok(()));

    let wrong = ring();
    assert_eq!(
        wrong.verify_key_check(&check),
        Err(CryptoError::WrongKey { have: wrong.key_ids(), expected: Some(right.id()) })
    );
    assert_eq!(wrong.verify_key_check(b"junk"), Err(CryptoError::Malformed));
}

#[test]
fn a_key_check_is_not_a_row_value() {
    let ring = ring();
    let check = ring.make_key_check();
    assert_eq!(ring.open(&Sealed(check), &Aad::new("key", "check", "")), Err(CryptoError::Tampered));
}

#[test]
fn base64_keys_round_trip_and_ids_are_stable() {
    let key = MasterKey::generate();
    let text = key.to_base64();
    assert_eq!(text.len(), 44);
    let again = MasterKey::from_base64(&format!("  {}\n", text.as_str())).expect("valid key");
    assert_eq!(again.id(), key.id());
    assert_eq!(again.to_base64(), text);

    // The id is a pure function of the key: all-zero key, computed once and pinned.
    let zero = MasterKey::from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").expect("valid key");
    let hash = Sha256::digest([KEY_ID_CONTEXT, &[0_u8; 32]].concat());
    assert_eq!(zero.id().0.to_be_bytes(), hash[..4]);
    assert_eq!(zero.id().to_string().len(), 8);
}

#[test]
fn bad_keys_are_refused_without_echoing_them() {
    let not_base64 = "not-base64!!sEcReTvAlUe";
    let short = STANDARD.encode(b"sixteen byte key");
    for (text, expected) in
        [(not_base64, "not valid base64"), (short.as_str(), "decodes to 16 bytes"), ("   ", "empty")]
    {
        let err = MasterKey::from_base64(text).expect_err("must be refused");
        let message = err.to_string();
        assert!(matches!(err, CryptoError::BadKey(_)));
        assert!(message.contains(expected), "{message}");
        assert!(!message.contains(text.trim()) || text.trim().is_empty(), "{message}");
        assert!(!message.contains("sEcReT"), "{message}");
    }
}

#[test]
fn debug_shows_key_ids_only() {
    let old = MasterKey::generate();
    let current = MasterKey::generate();
    let ring = Keyring::new(current.clone(), vec![old.clone()]);
    let printed = [format!("{current:?}"), format!("{ring:?}"), format!("{:#?}", ring)];
    for text in &printed {
        assert!(!text.contains(current.to_base64().as_str()), "{text}");
        assert!(!text.contains(old.to_base64().as_str()), "{text}");
    }
    assert_eq!(printed[0], format!("MasterKey {{ id: KeyId({}), .. }}", current.id()));
    assert!(printed[1].contains(&current.id().to_string()) && printed[1].contains(&old.id().to_string()));
}

#[test]
fn key_ids_display_as_eight_hex_digits() {
    assert_eq!(KeyId(0xab).to_string(), "000000ab");
    assert_eq!(format!("{:?}", KeyId(0xdead_beef)), "KeyId(deadbeef)");
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_open(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let ring = ring();
        let sealed = Sealed(bytes);
        prop_assert!(ring.open(&sealed, &aad()).is_err());
        let _ = Keyring::key_id_of(&sealed);
    }

    #[test]
    fn bytes_behind_a_valid_header_never_open(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        // The version and key id are right, so the decoder reaches the AEAD: it must refuse, never panic.
        let ring = ring();
        let mut bytes = vec![FORMAT_VERSION];
        bytes.extend_from_slice(&ring.current_id().0.to_be_bytes());
        bytes.extend_from_slice(&body);
        let result = ring.open(&Sealed(bytes), &aad());
        if body.len() < NONCE_LEN + TAG_LEN {
            prop_assert_eq!(result, Err(CryptoError::Malformed));
        } else {
            prop_assert_eq!(result, Err(CryptoError::Tampered));
        }
    }
}

#[test]
fn adopting_a_newer_ring_makes_its_key_current_and_keeps_the_old_ones() {
    let old = MasterKey::generate();
    let running = Keyring::new(old.clone(), Vec::new());
    let before = running.seal(b"before", &aad());

    let new = MasterKey::generate();
    let on_disk = Keyring::new(new.clone(), vec![old.clone()]);
    assert!(running.adopt(&on_disk));
    assert_eq!(running.key_ids(), vec![new.id(), old.id()]);
    assert_eq!(Keyring::key_id_of(&running.seal(b"after", &aad())), Some(new.id()));
    assert!(running.open(&before, &aad()).is_ok());

    // A source that lost the old key (retired elsewhere) does not make a running ring forget it.
    assert!(!running.adopt(&Keyring::new(new.clone(), Vec::new())));
    assert_eq!(running.key_ids(), vec![new.id(), old.id()]);
}

#[test]
fn an_unknown_key_id_makes_the_ring_read_its_source_again() {
    let old = MasterKey::generate();
    let new = MasterKey::generate();
    let source = Arc::new(Mutex::new(Keyring::new(old.clone(), Vec::new())));
    let reads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (from, counter) = (Arc::clone(&source), Arc::clone(&reads));
    let running = Keyring::new(old.clone(), Vec::new()).with_reload(Arc::new(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(from.lock().expect("lock").clone())
    }));

    // Another process rotates: the key source now names a new current key, and a value sealed with it appears.
    *source.lock().expect("lock") = Keyring::new(new.clone(), vec![old.clone()]);
    let rotated = Keyring::new(new.clone(), vec![old.clone()]).seal(b"sealed elsewhere", &aad());
    assert_eq!(running.open(&rotated, &aad()).map(|p| p.to_vec()), Ok(b"sealed elsewhere".to_vec()));
    assert_eq!(running.current_id(), new.id(), "new values are sealed with the key found");
    assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 1);

    // A key that is nowhere is named, and the source is not read again at once.
    let stranger = ring();
    let foreign = stranger.seal(b"x", &aad());
    assert_eq!(running.open(&foreign, &aad()), Err(CryptoError::UnknownKey { key_id: stranger.current_id() }));
    assert_eq!(running.open(&foreign, &aad()), Err(CryptoError::UnknownKey { key_id: stranger.current_id() }));
    assert!(reads.load(std::sync::atomic::Ordering::SeqCst) <= 2);
}

#[test]
fn a_ring_without_a_source_does_not_reload() {
    let ring = ring();
    assert_eq!(ring.reload(), Ok(None));
}

#[test]
fn the_ring_knows_its_own_keys_only() {
    let (current, older) = (MasterKey::generate(), MasterKey::generate());
    let ring = Keyring::new(current.clone(), vec![older.clone()]);
    assert!(ring.knows(current.id()));
    assert!(ring.knows(older.id()));
    assert!(!ring.knows(MasterKey::generate().id()));
}

#[test]
fn a_key_check_holding_other_text_is_the_wrong_key() {
    // Sealed with a key of the ring and the key check's associated data, but not the key check's text.
    let ring = ring();
    let Sealed(other) = ring.seal(b"latchkey key check v2", &Aad(KEY_CHECK_AAD.to_vec()));
    assert_eq!(
        ring.verify_key_check(&other),
        Err(CryptoError::WrongKey { have: ring.key_ids(), expected: Some(ring.current_id()) })
    );
}

#[test]
fn associated_data_prints_where_the_value_belongs() {
    assert_eq!(format!("{:?}", aad()), r#"Aad("latchkey/v1/connections/refresh_token/42")"#);
}
