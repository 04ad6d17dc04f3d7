"""Monitoring and alerting: rules evaluated on every sample, alert episodes, silences, notifications.

- `messages.py`: the contract between the engine and the notifiers (`AlertMessage`, `Dispatcher`).
- `rules.py`, `silences.py`: rules and silences, validated, stored, audited (`RuleView`, `SilenceView`).
- `state.py`: the pure state machine (`advance`, `replay`), shared by evaluation and the preview.
- `preview.py`: what a rule would have fired over stored history.
- `evaluation.py`: `AlertEngine`, each sample against every rule; writes through `store.py`.
- `queries.py`: listing, reading and acknowledging alerts (`AlertView`).
- `retention.py`: deleting old resolved alerts; `wiring.py`: the `Alerting` facade and its wiring.
- `notify.py`: notifier channels (webhook, email, apprise), the delivery queue and its log.
"""
