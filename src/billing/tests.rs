//! Hand-computed months for the billing computation. Values are chosen so the expected rank
//! can be read off: with samples of 1..=K units, the (M+1)-th highest is K − M units.

use super::*;

const MB: u64 = 1_000_000;

fn month(text: &str) -> Month {
    text.parse().expect("valid month")
}

/// Unix seconds of `day` (1-based) `hour:minute` in `month`.
fn at(month: Month, day: u32, hour: i64, minute: i64) -> i64 {
    month.start() + i64::from(day - 1) * DAY_SECS + hour * 3600 + minute * 60
}

fn whole(month: Month) -> Period {
    Period { start: month.start(), end: month.end() }
}

/// Samples of 1..=count MB, the v-th at interval (v − 1) × 16 of the month.
fn ramp(month: Month, count: u64) -> Vec<Sample> {
    (1..=count).map(|v| Sample { start: month.start() + (v as i64 - 1) * 16 * SAMPLE_SECS, bytes: v * MB }).collect()
}

fn p95(bill: &Bill) -> Percentile95 {
    bill.all_days.expect("non-empty period")
}

#[test]
fn months_of_31_30_29_and_28_days() {
    // (month, N, M): the billed sample is the (M+1)-th highest of 500 ramped samples.
    for (text, days, n, m) in [("2026-03", 31, 8928, 446), ("2026-04", 30, 8640, 432), ("2024-02", 29, 8352, 417), ("2026-02", 28, 8064, 403)] {
        let month = month(text);
        assert_eq!(month.days(), days, "{text}");
        let bill = compute("a.example", month, whole(month), &ramp(month, 500)).unwrap();
        let got = p95(&bill);
        let billed_units = 500 - u64::from(m);
        assert_eq!(
            got,
            Percentile95 {
                samples: n,
                dropped: m,
                billed_bytes: billed_units * MB,
                billed_start: month.start() + (billed_units as i64 - 1) * 16 * SAMPLE_SECS,
            },
            "{text}"
        );
        assert_eq!(got.billed_rank(), m + 1);
        assert_eq!((bill.effective_days, bill.effective_days_factor), (f64::from(days), 1.0), "{text}");
        assert_eq!(bill.daily_peaks.len(), days as usize);
    }
    // DESIGN §7's figures: the 447th sample of a 31-day month, the 433rd of a 30-day month.
    let march = month("2026-03");
    assert_eq!(p95(&compute("x", march, whole(march), &[]).unwrap()).billed_rank(), 447);
    let april = month("2026-04");
    assert_eq!(p95(&compute("x", april, whole(april), &[]).unwrap()).billed_rank(), 433);
}

#[test]
fn billed_value_is_reported_in_mbit_per_sec() {
    // 54 MB in 5 minutes = 54e6 × 8 / 300 bit/s = 1.44 Mbit/s.
    let march = month("2026-03");
    let bill = compute("a.example", march, whole(march), &ramp(march, 500)).unwrap();
    assert_eq!(p95(&bill).billed_bytes, 54 * MB);
    assert!((p95(&bill).billed_mbit_per_sec() - 1.44).abs() < 1e-12);
    assert!((bits_per_sec(54 * MB) - 1_440_000.0).abs() < 1e-6);
}

#[test]
fn missing_samples_count_as_zero() {
    // 100 samples in the first 100 intervals of March, nothing else: ranks 101..=8928 are
    // zeros ranked by time, so rank 447 is the 347th zero interval, index 100 + 346.
    let march = month("2026-03");
    let samples: Vec<Sample> = (0..100).map(|i| Sample { start: march.start() + i * SAMPLE_SECS, bytes: 7 * MB }).collect();
    let got = p95(&compute("a.example", march, whole(march), &samples).unwrap());
    assert_eq!(got, Percentile95 { samples: 8928, dropped: 446, billed_bytes: 0, billed_start: march.start() + 446 * SAMPLE_SECS });
    // Exactly 446 busy intervals: all dropped, the first zero is billed.
    let busy: Vec<Sample> = (0..446).map(|i| Sample { start: march.start() + i * SAMPLE_SECS, bytes: MB }).collect();
    let got = p95(&compute("a.example", march, whole(march), &busy).unwrap());
    assert_eq!((got.billed_bytes, got.billed_start), (0, march.start() + 446 * SAMPLE_SECS));
    // 447 busy intervals: the 447th is billed.
    let busy: Vec<Sample> = (0..447).map(|i| Sample { start: march.start() + i * SAMPLE_SECS, bytes: MB }).collect();
    let got = p95(&compute("a.example", march, whole(march), &busy).unwrap());
    assert_eq!((got.billed_bytes, got.billed_start), (MB, march.start() + 446 * SAMPLE_SECS));
}

#[test]
fn ties_at_the_cut_rank_earliest_first() {
    let march = month("2026-03");
    // 440 samples of 10 MB, then 20 of 5 MB: rank 447 is the 7th earliest 5 MB sample.
    let mut samples: Vec<Sample> = (0..440).map(|i| Sample { start: march.start() + i * 2 * SAMPLE_SECS, bytes: 10 * MB }).collect();
    let five_at = |k: i64| at(march, 20, 0, 0) + k * 3 * SAMPLE_SECS;
    samples.extend((0..20).rev().map(|k| Sample { start: five_at(k), bytes: 5 * MB }));
    let got = p95(&compute("a.example", march, whole(march), &samples).unwrap());
    assert_eq!((got.billed_bytes, got.billed_start), (5 * MB, five_at(6)));
    // 460 equal samples straddle the cut: the value is theirs, the time the 447th earliest.
    let equal: Vec<Sample> = (0..460).rev().map(|i| Sample { start: march.start() + i * 5 * SAMPLE_SECS, bytes: 3 * MB }).collect();
    let got = p95(&compute("a.example", march, whole(march), &equal).unwrap());
    assert_eq!((got.billed_bytes, got.billed_start), (3 * MB, march.start() + 446 * 5 * SAMPLE_SECS));
}

#[test]
fn only_days_with_traffic_variant() {
    // April (N = 8640, M = 432); 200 samples of 1..=200 MB spread over 10 days (the 1st, 4th,
    // …, 28th). Days with traffic: N = 2880, M = 144, billed 200 − 144 = 56 MB.
    let april = month("2026-04");
    let traffic_days: Vec<u32> = (0..10).map(|k| 1 + 3 * k).collect();
    let samples: Vec<Sample> = (1..=200u64)
        .map(|v| {
            let day = traffic_days[(v as usize - 1) % 10];
            let slot = (v as i64 - 1) / 10; // 0..20 within the day
            Sample { start: at(april, day, 0, 0) + slot * 7 * SAMPLE_SECS, bytes: v * MB }
        })
        .collect();
    let bill = compute("a.example", april, whole(april), &samples).unwrap();
    assert_eq!(bill.days_with_traffic, 10);
    let td = bill.traffic_days.expect("has traffic");
    assert_eq!((td.samples, td.dropped, td.billed_bytes), (2880, 144, 56 * MB));
    // Sample 56 sits on the 6th traffic day (index 5 = the 16th), slot 5.
    assert_eq!(td.billed_start, at(april, 16, 0, 0) + 5 * 7 * SAMPLE_SECS);
    // Over all days, only 200 samples are non-zero: M = 432 drops them all.
    assert_eq!(p95(&bill).billed_bytes, 0);
    // No traffic at all: no days-with-traffic bill.
    let idle = compute("a.example", april, whole(april), &[Sample { start: april.start(), bytes: 0 }]).unwrap();
    assert_eq!((idle.days_with_traffic, idle.traffic_days), (0, None));
}

#[test]
fn daily_peaks_and_their_average() {
    // February 2026: day d peaks at d MB at d:00 (hour d mod 24), with a lower sample beside.
    let feb = month("2026-02");
    let mut samples = Vec::new();
    for day in 1..=28u32 {
        let hour = i64::from(day % 24);
        samples.push(Sample { start: at(feb, day, hour, 0), bytes: u64::from(day) * MB });
        samples.push(Sample { start: at(feb, day, hour, 5), bytes: MB / 2 });
    }
    // A tie on the 28th: the earlier interval is the peak's time.
    samples.push(Sample { start: at(feb, 28, 1, 0), bytes: 28 * MB });
    let bill = compute("a.example", feb, whole(feb), &samples).unwrap();
    assert_eq!(bill.daily_peaks.len(), 28);
    assert_eq!(bill.daily_peaks[2], DailyPeak { day_start: at(feb, 3, 0, 0), peak_bytes: 3 * MB, peak_start: at(feb, 3, 3, 0) });
    assert_eq!(bill.peak, Some(DailyPeak { day_start: at(feb, 28, 0, 0), peak_bytes: 28 * MB, peak_start: at(feb, 28, 1, 0) }));
    // (1 + … + 28) / 28 = 14.5 MB per 5 minutes = 0.3867 Mbit/s.
    assert_eq!(bill.average_daily_peak_bytes, 14.5 * MB as f64);
    assert!((bill.average_daily_peak_mbit_per_sec() - 14.5 * 8.0 / 300.0).abs() < 1e-12);
    // A day without samples peaks at zero, at its first interval.
    let sparse = compute("a.example", feb, whole(feb), &samples[..2]).unwrap();
    assert_eq!(sparse.daily_peaks[1], DailyPeak { day_start: at(feb, 2, 0, 0), peak_bytes: 0, peak_start: at(feb, 2, 0, 0) });
}

#[test]
fn traffic_in_decimal_gigabytes() {
    let march = month("2026-03");
    let samples = [
        Sample { start: at(march, 1, 0, 0), bytes: 1_000_000_000 },
        Sample { start: at(march, 15, 12, 30), bytes: 1_500_000_000 },
        // Outside the period: not billed.
        Sample { start: march.end(), bytes: 9_000_000_000 },
    ];
    let bill = compute("a.example", march, whole(march), &samples).unwrap();
    assert_eq!(bill.traffic_bytes, 2_500_000_000);
    assert_eq!(gigabytes(bill.traffic_bytes), 2.5);
}

#[test]
fn partial_month_periods_and_effective_days() {
    let march = month("2026-03");
    let after = month("2026-04").start() + 7 * DAY_SECS;
    let activity = |first, last| Some(Activity { first_sample: first, last_sample: last });
    let period = |first, last| billing_period(march, activity(first, last), after, Proration::ByActivity).unwrap();
    let days = |p: Period| (p.end - p.start) / DAY_SECS;

    // Started on the 11th (10:00), still running after the month: 11th..31st = 21 days.
    let started = period(at(march, 11, 10, 0), month("2026-04").start() + 3600);
    assert_eq!((started.start, started.end, days(started)), (at(march, 11, 0, 0), march.end(), 21));
    // Ended on the 20th (last sample 15:00), active before the month: 1st..20th = 20 days.
    let ended = period(at(march, 1, 0, 0) - DAY_SECS, at(march, 20, 15, 0));
    assert_eq!((ended.start, ended.end, days(ended)), (march.start(), at(march, 21, 0, 0), 20));
    // Both: the 11th to the 20th.
    assert_eq!(days(period(at(march, 11, 0, 5), at(march, 20, 23, 55))), 10);
    // Outside the month entirely: an empty period.
    assert_eq!(period(month("2026-04").start(), after).samples(), 0);
    assert_eq!(period(march.start() - 10 * DAY_SECS, march.start() - DAY_SECS).samples(), 0);
    // --whole-month ignores activity.
    let whole_month = billing_period(march, activity(at(march, 11, 0, 0), at(march, 20, 0, 0)), after, Proration::WholeMonth).unwrap();
    assert_eq!(whole_month, whole(march));

    // The bill over 21 days: N = 6048, M = 302, factor 21/31; ramp of 500 from the 11th.
    let samples: Vec<Sample> = (1..=500u64).map(|v| Sample { start: started.start + (v as i64 - 1) * 12 * SAMPLE_SECS, bytes: v * MB }).collect();
    let bill = compute("a.example", march, started, &samples).unwrap();
    let got = p95(&bill);
    assert_eq!((got.samples, got.dropped, got.billed_bytes), (6048, 302, 198 * MB));
    assert_eq!(got.billed_start, started.start + 197 * 12 * SAMPLE_SECS);
    assert_eq!(bill.effective_days, 21.0);
    assert!((bill.effective_days_factor - 21.0 / 31.0).abs() < 1e-12);
    assert_eq!(bill.daily_peaks.len(), 21);
    // An empty period bills nothing.
    let empty = compute("a.example", march, Period { start: march.end(), end: march.end() }, &samples).unwrap();
    assert_eq!((empty.all_days, empty.peak, empty.traffic_bytes, empty.average_daily_peak_bytes), (None, None, 0, 0.0));
}

#[test]
fn month_to_date_counts_the_intervals_that_have_started() {
    let march = month("2026-03");
    // 10 March 12:02: 9 whole days + 12 h + the 12:00 interval = 2592 + 144 + 1 intervals.
    let now = at(march, 10, 12, 2);
    let period = billing_period(march, None, now, Proration::ByActivity).unwrap();
    assert_eq!((period.start, period.end, period.samples()), (march.start(), at(march, 10, 12, 5), 2737));
    // Activity in progress does not end the period early, even without later samples.
    let active = Some(Activity { first_sample: at(march, 2, 0, 0), last_sample: at(march, 5, 0, 0) });
    assert_eq!(billing_period(march, active, now, Proration::ByActivity).unwrap(), Period { start: at(march, 2, 0, 0), end: at(march, 10, 12, 5) });
    let bill = compute("a.example", march, period, &[]).unwrap();
    assert_eq!(p95(&bill).dropped, 136);
    assert_eq!(bill.daily_peaks.len(), 10);
    assert_eq!(billing_period(march, None, march.start() - 1, Proration::ByActivity), Err(BillingError::NotStarted(march)));
}

#[test]
fn accounts_sum_samples_per_interval_before_the_percentile() {
    // April: N = 8640, M = 432. Each domain has 433 samples of 10 MB, so each bills 10 MB.
    let april = month("2026-04");
    let series = |domain: &str, offset: i64| DomainSeries {
        domain: domain.into(),
        account: Some("acme".into()),
        activity: Some(Activity { first_sample: april.start() - DAY_SECS, last_sample: april.end() + DAY_SECS }),
        samples: (0..433).map(|i| Sample { start: april.start() + (offset + i) * SAMPLE_SECS, bytes: 10 * MB }).collect(),
    };
    let now = month("2026-05").start() + DAY_SECS;
    let apart = [series("a.example", 0), series("b.example", 433)];
    let bills = bill_month(april, now, Proration::ByActivity, &Scope::Account("acme".into()), &apart).unwrap();
    let names: Vec<_> = bills.iter().map(|b| (b.subject.kind(), b.subject.name())).collect();
    assert_eq!(names, [("account", "acme"), ("domain", "a.example"), ("domain", "b.example")]);
    // Disjoint intervals: 866 samples of 10 MB, rank 433 is 10 MB, not the 20 MB sum of the
    // domains' percentiles.
    assert_eq!(p95(&bills[0].bill).billed_bytes, 10 * MB);
    assert_eq!(bills[0].domains, ["a.example", "b.example"]);
    assert_eq!(p95(&bills[1].bill).billed_bytes, 10 * MB);
    // The same intervals: every sum is 20 MB.
    let together = [series("a.example", 0), series("b.example", 0)];
    let bills = bill_month(april, now, Proration::ByActivity, &Scope::Account("acme".into()), &together).unwrap();
    assert_eq!(p95(&bills[0].bill).billed_bytes, 20 * MB);
    assert_eq!(bills[0].bill.traffic_bytes, 2 * 433 * 10 * MB);
}

#[test]
fn account_period_spans_its_domains() {
    let march = month("2026-03");
    let now = month("2026-04").start() + DAY_SECS;
    let domain = |name: &str, first_day: u32, last_day: u32, account: Option<&str>| DomainSeries {
        domain: name.into(),
        account: account.map(str::to_string),
        activity: Some(Activity { first_sample: at(march, first_day, 6, 0), last_sample: at(march, last_day, 6, 0) }),
        samples: vec![Sample { start: at(march, first_day, 6, 0), bytes: MB }, Sample { start: at(march, last_day, 6, 0), bytes: MB }],
    };
    let series = [domain("b.example", 5, 12, Some("acme")), domain("a.example", 10, 25, Some("acme")), domain("c.example", 1, 31, None)];
    let bills = bill_month(march, now, Proration::ByActivity, &Scope::All, &series).unwrap();
    let names: Vec<_> = bills.iter().map(|b| (b.subject.kind(), b.subject.name(), b.bill.effective_days)).collect();
    assert_eq!(names, [("domain", "a.example", 16.0), ("domain", "b.example", 8.0), ("domain", "c.example", 31.0), ("account", "acme", 21.0)]);
    assert_eq!(bills[0].account.as_deref(), Some("acme"));
    let only = bill_month(march, now, Proration::ByActivity, &Scope::Domain("b.example".into()), &series).unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].subject, Subject::Domain("b.example".into()));
}

#[test]
fn unaligned_samples_are_errors() {
    let march = month("2026-03");
    let err = compute("a.example", march, whole(march), &[Sample { start: march.start() + 60, bytes: 1 }]).unwrap_err();
    assert_eq!(err, BillingError::Unaligned { subject: "a.example".into(), start: march.start() + 60 });
}

#[test]
fn months_parse_and_print() {
    assert_eq!(month("2026-03"), Month { year: 2026, month: 3 });
    assert_eq!(month("2026-03").to_string(), "2026-03");
    assert_eq!(month("2026-03").start(), 1_772_323_200);
    assert_eq!(month("2026-12").end(), month("2027-01").start());
    for bad in ["2026-3", "2026-13", "2026-00", "26-03", "2026/03", "2026-03-01", "", "abcd-ef", "+026-03"] {
        assert_eq!(bad.parse::<Month>(), Err(BillingError::BadMonth(bad.into())), "{bad:?}");
    }
    assert_eq!(format_utc(at(month("2024-02"), 29, 23, 55)), "2024-02-29T23:55:00Z");
    assert_eq!(format_date(month("2026-03").start()), "2026-03-01");
}

#[test]
fn domain_scope_is_normalised_like_the_job() {
    assert_eq!(Scope::domain(" Shop.Example.COM:8443 "), Ok(Scope::Domain("shop.example.com".into())));
    assert!(matches!(Scope::domain("a b"), Err(BillingError::BadDomain { .. })));
}
