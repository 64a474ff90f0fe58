//! The bounds on `/metrics` series: topics above the partition bound get per-topic series
//! only, lag beyond the group-partition bound folds to topic lag, groups beyond the group
//! bound get none (and cost the scrape nothing), and the cleaner's per-partition ratio
//! keeps to the partition bound.

use std::collections::BTreeMap;

use runnel_tests::TestBroker;

use super::{commit, commit_at, lag, must, produce_hundred, scrape, TOPIC};

#[tokio::test]
async fn topics_above_the_partition_bound_get_per_topic_series_only() {
    let broker = TestBroker::start_with(|c| c.metrics_partition_series_max = 2).await;
    let mut client = broker.client().await;
    produce_hundred(&broker, &mut client).await;
    commit(&mut client, "g", 30).await;
    let page = scrape(&broker).await;
    assert!(!page.contains(&format!(
        "runnel_partition_log_end_offset{{topic=\"{TOPIC}\""
    )));
    assert!(!page.contains("runnel_consumer_group_lag_records{group=\"g\""));
    let topic = format!("{{topic=\"{TOPIC}\"}}");
    assert_eq!(must(&page, &format!("runnel_topic_records{topic}")), 100.0);
    let topic_lag =
        format!("runnel_consumer_group_topic_lag_records{{group=\"g\",topic=\"{TOPIC}\"}}");
    assert_eq!(must(&page, &topic_lag), 70.0);
    let folded = "runnel_consumer_group_lag_partitions_folded";
    assert_eq!(
        must(
            &page,
            &format!("{folded}{{bound=\"partition_series_max\"}}")
        ),
        1.0
    );
}

/// Per-partition lag series multiply by groups too: beyond
/// `--metrics-group-partition-series-max` (group, partition) pairs, the groups left (in id
/// order) get per group/topic lag only, and a gauge counts the pairs folded.
#[tokio::test]
async fn lag_series_beyond_the_group_partition_bound_fold_to_topic_lag() {
    let broker = TestBroker::start_with(|c| c.metrics_group_partition_series_max = 2).await;
    let mut client = broker.client().await;
    produce_hundred(&broker, &mut client).await;
    commit_at(&mut client, "a", TOPIC, 0, 30).await;
    commit_at(&mut client, "a", TOPIC, 1, 0).await;
    commit(&mut client, "b", 40).await;
    commit(&mut client, "c", 50).await;
    let page = scrape(&broker).await;
    assert_eq!(lag(&page, "runnel_consumer_group_lag_records", "a"), 70.0);
    let a1 = format!(
        "runnel_consumer_group_committed_offset{{group=\"a\",topic=\"{TOPIC}\",partition=\"1\"}}"
    );
    assert_eq!(must(&page, &a1), 0.0);
    for group in ["b", "c"] {
        for name in [
            "runnel_consumer_group_committed_offset",
            "runnel_consumer_group_lag_records",
            "runnel_consumer_group_lag_seconds",
        ] {
            let series = format!("{name}{{group=\"{group}\"");
            assert!(!page.contains(&series), "{series} in\n{page}");
        }
    }
    let topic_lag = |group: &str| {
        let series = format!(
            "runnel_consumer_group_topic_lag_records{{group=\"{group}\",topic=\"{TOPIC}\"}}"
        );
        must(&page, &series)
    };
    assert_eq!((topic_lag("b"), topic_lag("c")), (60.0, 50.0));
    let folded = "runnel_consumer_group_lag_partitions_folded";
    let by = |bound: &str| must(&page, &format!("{folded}{{bound=\"{bound}\"}}"));
    assert_eq!(by("group_partition_series_max"), 2.0);
    assert_eq!(by("partition_series_max"), 0.0);
    let (_, info) = broker.http_get("/v1/broker").await;
    assert!(
        info.contains("\"metrics_group_partition_series_max\":2"),
        "{info}"
    );
}

/// Every per-group series grows with the number of groups: only the first
/// `--metrics-group-series-max` groups in id order get any, the rest are counted.
#[tokio::test]
async fn groups_beyond_the_group_series_bound_get_no_per_group_series() {
    let broker = TestBroker::start_with(|c| c.metrics_group_series_max = 2).await;
    let mut client = broker.client().await;
    produce_hundred(&broker, &mut client).await;
    for (group, offset) in [("c", 50), ("a", 30), ("b", 40)] {
        commit(&mut client, group, offset).await;
    }
    let page = scrape(&broker).await;
    for (group, lag_records) in [("a", 70.0), ("b", 60.0)] {
        assert_eq!(
            lag(&page, "runnel_consumer_group_lag_records", group),
            lag_records
        );
        let labels = format!("{{group=\"{group}\"}}");
        assert_eq!(
            must(&page, &format!("runnel_consumer_group_members{labels}")),
            0.0
        );
        let topic_lag = format!(
            "runnel_consumer_group_topic_lag_records{{group=\"{group}\",topic=\"{TOPIC}\"}}"
        );
        assert_eq!(must(&page, &topic_lag), lag_records);
    }
    assert!(!page.contains("group=\"c\""), "group c in\n{page}");
    assert_eq!(must(&page, "runnel_consumer_groups_omitted"), 1.0);
    assert_eq!(must(&page, "runnel_consumer_groups{state=\"Empty\"}"), 3.0);
    let (_, info) = broker.http_get("/v1/broker").await;
    assert!(info.contains("\"metrics_group_series_max\":2"), "{info}");
}

/// A scrape computes lag only for the groups it shows: one left out by
/// `--metrics-group-series-max` costs no batch read and no cache entry. (Groups folded by
/// the partition bounds still need every partition's timestamp: their per-topic lag in
/// seconds, which is emitted, is the largest over the partitions.)
#[tokio::test]
async fn a_scrape_reads_nothing_for_the_groups_it_leaves_out() {
    let broker = TestBroker::start_with(|c| c.metrics_group_series_max = 1).await;
    let mut client = broker.client().await;
    produce_hundred(&broker, &mut client).await;
    commit(&mut client, "a", 30).await;
    commit(&mut client, "b", 40).await;
    let cache = &broker.context().metrics.lag_cache;
    let page = scrape(&broker).await;
    assert_eq!(lag(&page, "runnel_consumer_group_lag_records", "a"), 70.0);
    assert_eq!(must(&page, "runnel_consumer_groups_omitted"), 1.0);
    assert_eq!((cache.reads_total(), cache.len()), (1, 1));
    scrape(&broker).await;
    assert_eq!((cache.reads_total(), cache.len()), (1, 1));
}

/// `runnel_cleaner_dirty_ratio` is a per-partition series: a compacted topic above the
/// partition bound gets none, like the other per-partition families.
#[tokio::test]
async fn cleaner_dirty_ratio_keeps_to_the_partition_bound() {
    let broker = TestBroker::start_with(|c| c.metrics_partition_series_max = 2).await;
    let compacted: BTreeMap<String, String> = [("cleanup.policy".to_owned(), "compact".to_owned())]
        .into_iter()
        .collect();
    let logs = &broker.context().logs;
    logs.create_topic("wide", 3, compacted.clone(), false)
        .unwrap();
    logs.create_topic("narrow", 2, compacted, false).unwrap();
    logs.clean_now("wide", 0).unwrap();
    logs.clean_now("narrow", 0).unwrap();
    let page = scrape(&broker).await;
    assert!(page.contains("runnel_cleaner_dirty_ratio{topic=\"narrow\",partition=\"0\"}"));
    assert!(
        !page.contains("runnel_cleaner_dirty_ratio{topic=\"wide\""),
        "{page}"
    );
}
