//! What `corral doctor` says on Windows about the leader's token and the
//! working-set limit: how each is provided, and under Wine what is not.

/// One line per feature, honest about Wine.
pub(super) fn notes(wine: bool) -> Vec<String> {
    let mut out = vec![
        "leader token (isolate.token / --token): restricted (CreateRestrictedToken with DISABLE_MAX_PRIVILEGE, \
         Administrators deny-only, restricting SIDs Everyone, Users, RESTRICTED, the user and the logon session) or \
         low-integrity (DISABLE_MAX_PRIVILEGE and the Low mandatory label); the leader is started by \
         CreateProcessAsUserW, suspended, assigned to the job, then resumed"
            .to_string(),
        "working-set limit (limits.working_set / --working-set): JOB_OBJECT_LIMIT_WORKINGSET, the min and max \
         resident memory of each process; pages past the max are trimmed, nothing is killed"
            .to_string(),
    ];
    if wine {
        out.push(
            "under Wine the token is made and the leader starts through CreateProcessAsUserW, but Wine keeps neither \
             the integrity level nor the restricting SIDs nor the deleted privileges: the leader runs with corral's \
             own rights; the working-set limit is accepted, not enforced"
                .to_string(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn wine_is_named_only_under_wine() {
        assert!(super::notes(true).iter().any(|n| n.contains("under Wine")));
        assert!(!super::notes(false).iter().any(|n| n.contains("Wine")));
    }
}
