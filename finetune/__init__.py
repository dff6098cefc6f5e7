"""Fine-tuning on Chinese classification, tagging and span-extraction (CMRC 2018, DRCD) tasks."""
