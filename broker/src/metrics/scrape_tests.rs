use super::*;

fn group(id: &str) -> GroupOverview {
    GroupOverview {
        group_id: id.to_owned(),
        state: GroupState::Empty,
        protocol_type: String::new(),
        protocol_name: String::new(),
        generation_id: 0,
        leader_id: String::new(),
        members: Vec::new(),
        offsets: Vec::new(),
    }
}

fn rows(topic: &str, partitions: i32) -> Vec<PartitionLag> {
    (0..partitions)
        .map(|partition| PartitionLag {
            topic: topic.to_owned(),
            partition,
            committed_offset: 0,
            log_start_offset: 0,
            log_end_offset: 1,
            lag_records: Some(1),
            lag_seconds: Some(1.0),
        })
        .collect()
}

#[test]
fn groups_keep_partition_series_while_their_pairs_fit_in_the_bound() {
    let (a, b, c, d) = (group("a"), group("b"), group("c"), group("d"));
    let lags = vec![
        (&a, rows("small", 2)),
        // Three rows do not fit in the two left: folded whole, not cut.
        (&b, [rows("small", 3), rows("wide", 5)].concat()),
        (&c, rows("small", 2)),
        (&d, rows("small", 1)),
    ];
    let detailed: HashMap<&str, bool> = [("small", true), ("wide", false)].into();
    let series = lag_series(&lags, &detailed, 4);
    assert_eq!(
        series,
        LagSeries {
            groups: vec![true, false, true, false],
            folded_by_topic: 5,
            folded_by_group: 4,
        }
    );
    let unbounded = lag_series(&lags, &detailed, usize::MAX);
    assert_eq!(unbounded.groups, vec![true; 4]);
    assert_eq!(unbounded.folded_by_group, 0);
    let none = lag_series(&lags, &detailed, 0);
    assert_eq!(none.groups, vec![false; 4]);
    assert_eq!(none.folded_by_group, 8);
}

/// Every group still gets its per-topic lag, folded or not.
#[test]
fn folded_groups_keep_their_topic_lag() {
    let (a, b) = (group("a"), group("b"));
    let lags = vec![(&a, rows("small", 2)), (&b, rows("small", 2))];
    let detailed: HashMap<&str, bool> = [("small", true)].into();
    let series = lag_series(&lags, &detailed, 2);
    let mut page = Page::with_capacity(4096);
    render_groups(&mut page, &lags, &detailed, &series);
    let page = page.into_string();
    assert!(page.contains(
        "runnel_consumer_group_lag_records{group=\"a\",topic=\"small\",partition=\"1\"} 1"
    ));
    assert!(!page.contains("runnel_consumer_group_lag_records{group=\"b\""));
    assert!(!page.contains("runnel_consumer_group_committed_offset{group=\"b\""));
    assert!(page.contains("runnel_consumer_group_topic_lag_records{group=\"b\",topic=\"small\"} 2"));
    assert!(page.contains(
        "runnel_consumer_group_lag_partitions_folded{bound=\"group_partition_series_max\"} 2"
    ));
}
