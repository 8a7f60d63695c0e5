//! The DSCP and ECN the replies came back with: a fixed tally per flow
//! (nothing allocated per reply), merged into the figures every run reports.

use std::collections::BTreeMap;

use serde::Serialize;

/// Replies per TOS field, as one flow counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TosTally {
    dscp: [u64; 64],
    ecn: [u64; 4],
    /// Replies whose TOS the kernel reported.
    read: u64,
}

impl Default for TosTally {
    fn default() -> Self {
        TosTally {
            dscp: [0; 64],
            ecn: [0; 4],
            read: 0,
        }
    }
}

impl TosTally {
    /// Counts `n` replies that arrived with TOS byte `tos`.
    pub fn count(&mut self, tos: u8, n: u64) {
        self.dscp[usize::from(tos >> 2)] += n;
        self.ecn[usize::from(tos & 3)] += n;
        self.read += n;
    }

    /// Adds another flow's tally.
    pub fn merge(&mut self, o: &TosTally) {
        for (a, b) in self.dscp.iter_mut().zip(o.dscp) {
            *a += b;
        }
        for (a, b) in self.ecn.iter_mut().zip(o.ecn) {
            *a += b;
        }
        self.read += o.read;
    }

    /// The figures of a run whose probes carried `tos` (`None`: the
    /// system's default, DSCP 0).
    pub fn figures(&self, tos: Option<u8>) -> DscpFigures {
        let sent = tos.unwrap_or(0) >> 2;
        let read = self.read > 0;
        let map = |counts: &[u64]| -> BTreeMap<u8, u64> {
            (0u8..)
                .zip(counts)
                .filter(|&(_, &n)| n > 0)
                .map(|(v, &n)| (v, n))
                .collect()
        };
        DscpFigures {
            dscp_sent: sent,
            dscp_seen: read.then(|| map(&self.dscp)),
            ecn_seen: read.then(|| map(&self.ecn)),
            dscp_changed: read.then(|| self.read - self.dscp[usize::from(sent)]),
            marked: tos.is_some(),
        }
    }
}

/// What came back of the DSCP the probes were sent with; part of every
/// run's summary (`RunSummary::dscp`, flattened into its JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DscpFigures {
    /// The DSCP the probes were sent with (0-63; 0 without `--tos`).
    pub dscp_sent: u8,
    /// Replies per DSCP they arrived with (`None` where the TOS cannot be
    /// read: no `IP_RECVTOS` here). Every reply matched to a probe counts,
    /// duplicates and late ones too.
    pub dscp_seen: Option<BTreeMap<u8, u64>>,
    /// Replies per ECN codepoint they arrived with (0 Not-ECT, 1 ECT(1),
    /// 2 ECT(0), 3 CE).
    pub ecn_seen: Option<BTreeMap<u8, u64>>,
    /// Replies whose DSCP differs from the one sent: re-marked on the way
    /// out, at the server or on the way back (an echo server that does not
    /// copy the DSCP shows here too).
    pub dscp_changed: Option<u64>,
    /// Whether the probes were marked on purpose (`--tos`).
    #[serde(skip)]
    pub marked: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_says_what_came_back_and_what_changed() {
        let ef = 46 << 2;
        let mut a = TosTally::default();
        a.count(ef, 3);
        let mut b = TosTally::default();
        b.count(ef | 2, 1);
        b.count(0, 2);
        a.merge(&b);
        let f = a.figures(Some(ef));
        assert_eq!(f.dscp_sent, 46);
        assert_eq!(f.dscp_seen, Some(BTreeMap::from([(0, 2), (46, 4)])));
        assert_eq!(f.ecn_seen, Some(BTreeMap::from([(0, 5), (2, 1)])));
        assert_eq!((f.dscp_changed, f.marked), (Some(2), true));
        let unread = TosTally::default().figures(None);
        assert_eq!((unread.dscp_seen, unread.dscp_changed), (None, None));
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(json["dscp_seen"]["46"], 4);
        assert!(json.get("marked").is_none());
    }
}
