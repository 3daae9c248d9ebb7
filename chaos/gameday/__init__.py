"""Game days: files of experiments run as one rehearsal, on a cron schedule or exported to
Kubernetes CronJobs and Argo Workflows, scored and reported together."""
