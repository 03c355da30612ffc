#!/usr/bin/env bash
# Runs the journal's randomized crash-point suite over many seeds: tests/fault-seeds.sh N [first-seed]
# (CI runs 60 from seed 1). A failure prints each failing seed with its scenario and crash point;
# replay one with: tests/fault-seeds.sh 1 <seed>. The detailed log ends with a count of seeds per kind of crash.
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-1000}"
first="${2:-1}"
dotnet build tests/HalfMsgBroker.Broker.Tests -v q
HALFMSG_FAULT_SEEDS="$count" HALFMSG_FAULT_FIRST_SEED="$first" dotnet test tests/HalfMsgBroker.Broker.Tests --no-build \
  --filter "FullyQualifiedName~JournalCrashPointTests" --logger "console;verbosity=detailed"
