//! The layer in one process: two "workers" are two layers on two cells of
//! one shared region, each in its own `LocalSet` task, talking over real
//! abstract sockets.

use std::time::Duration;

use super::*;

fn ready(shared: &Shared, slot: usize) -> usize {
    let id = shared.claim(slot).expect("a cell");
    let cell = shared.cell(id).expect("cell");
    // Both "workers" are this process: the peer check finds its pid.
    cell.set_pid(std::process::id() as i32);
    cell.set_state(CellState::Ready);
    id
}

async fn next_text(m: &Member) -> String {
    match tokio::time::timeout(Duration::from_secs(2), m.mailbox().next()).await {
        Ok(Next::Message(p)) => match &p.payload {
            Payload::Text(t) => t.clone(),
            Payload::Binary(_) => panic!("binary"),
        },
        other => panic!("no message: {other:?}"),
    }
}

#[test]
fn groups_reach_members_on_both_workers_and_count_them() {
    let shared = Shared::new().expect("memfd");
    let (a, b) = (ready(&shared, 0), ready(&shared, 1));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    tokio::task::LocalSet::new().block_on(&rt, async move {
        let one = Channels::new(shared, a, Settings::default()).expect("a");
        let two = Channels::new(shared, b, Settings::default()).expect("b");
        one.listen().expect("listen a");
        two.listen().expect("listen b");
        let (m1, m2, m3) = (one.member(), two.member(), two.member());
        m1.join("room");
        m2.join("room");
        m3.join("other");
        assert_eq!((one.host_count("room"), two.host_count("room")), (2, 2));
        assert_eq!(one.host_count("other"), 1);

        one.send_group("room", Payload::Text("hi".into()))
            .expect("send");
        assert_eq!(next_text(&m1).await, "hi");
        assert_eq!(next_text(&m2).await, "hi");
        assert!(m3.mailbox().is_empty(), "another group's member");

        // Direct, across workers, by the id's text.
        let id: ConnectionId = m3.id().to_string().parse().expect("id");
        one.send_to(&id, Payload::Text("just you".into()))
            .expect("direct");
        assert_eq!(next_text(&m3).await, "just you");

        // Too large: refused whole.
        let big = Payload::Binary(Bytes::from(vec![0u8; (1 << 20) + 1]));
        assert!(matches!(
            one.send_group("room", big),
            Err(SendError::TooLarge { .. })
        ));

        // A closed socket leaves its groups.
        drop(m2);
        assert_eq!(one.host_count("room"), 1);
        m1.leave("room");
        assert_eq!(one.host_count("room"), 0);
    });
}
