//! A child process (this test binary started again) runs bank transfers in a loop on a
//! standalone database and is killed with SIGKILL at a random moment, round after round; after
//! each kill the parent reopens the folder (recovery runs) and checks the bank: total conserved,
//! every transfer the child reported committed is in the audit, balances = audit replay, trees
//! valid, no damage found on open, and the database verifies clean. `SOP_KILL_ROUNDS` sets the rounds (25 by
//! default; `cargo xtask stress` runs 100).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use sop_core::Uuid;
use sop_database::Database;

use crate::support::{assert_bank, create_bank, next_transfer, rt, transfer};

/// The child: transfers until killed, printing `READY` once open and `DONE <id>` after each
/// commit returns. Does nothing when not started as the child.
#[test]
fn child() {
    let Ok(path) = std::env::var("SOP_KILL_DB") else {
        return;
    };
    let seed: u64 = std::env::var("SOP_KILL_SEED").unwrap().parse().unwrap();
    rt().block_on(async move {
        let db = Database::standalone(&path).unwrap();
        let mut out = std::io::stdout().lock();
        writeln!(out, "READY").unwrap();
        out.flush().unwrap();
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        loop {
            let Some((from, to, amount)) = next_transfer(&mut s) else {
                continue;
            };
            let id = Uuid::new_v4();
            transfer(&db, 10, (id, from, to, amount)).await.unwrap();
            writeln!(out, "DONE {id}").unwrap();
            out.flush().unwrap();
        }
    });
}

#[test]
fn a_process_killed_at_random_moments_keeps_the_bank_consistent() {
    let rounds: u64 = std::env::var("SOP_KILL_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(25);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let rt = rt();
    rt.block_on(async { create_bank(&Database::standalone(&root).unwrap()).await });

    let mut committed = BTreeSet::new();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let (mut recovered, mut audited) = (0usize, 0usize);
    for round in 0..rounds {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "kill::child", "--nocapture", "--test-threads=1"])
            .env("SOP_KILL_DB", &root)
            .env("SOP_KILL_SEED", (round + 1).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (lines_tx, lines) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        // One round in five is killed blind, possibly while it opens and recovers; the others
        // once the child is transferring.
        if next(5) == 0 {
            std::thread::sleep(Duration::from_millis(next(150)));
        } else {
            // libtest prints its own lines first.
            loop {
                let line = lines.recv_timeout(Duration::from_secs(60));
                let line = line.unwrap_or_else(|e| panic!("round {round}: no READY: {e}"));
                if line.ends_with("READY") {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(20 + next(400)));
        }
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "round {round}: the child ended by itself: {:?}",
            lines.try_iter().collect::<Vec<_>>()
        );
        reader.join().unwrap();
        let mut done = 0;
        for line in lines.try_iter() {
            if let Some(id) = line.strip_prefix("DONE ") {
                committed.insert(id.parse::<Uuid>().unwrap());
                done += 1;
            }
        }
        rt.block_on(async {
            let db = Database::standalone(&root).unwrap();
            let r = db.recovery();
            assert!(r.damage.is_none(), "round {round}: {:?}", r.damage);
            recovered += r.replayed;
            let at = format!("round {round} ({done} transfers reported)");
            audited = assert_bank(&db, &committed).await;
            crate::support::assert_verified(&db, &at).await;
        });
    }
    eprintln!(
        "{rounds} kills: {} transfers reported committed, {audited} in the audit, {recovered} \
         commits replayed from the log on reopen",
        committed.len()
    );
    assert!(committed.len() as u64 >= rounds, "the child hardly ran");
}
