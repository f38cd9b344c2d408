"""Community rules and moderation: rules and the sanction ladder, reports and their queue,
strikes and sanctions (with the job that lifts expired ones), appeals, standing.

A domain per folder; they use each other through typed functions only (the sanction
ladder is applied by `sanctions.service.apply_uphold`, reports never touch its tables).
"""
