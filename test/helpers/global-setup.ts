/** Nothing to start for the folder store; S3 suites start their own server. */
export default function setup(): void {}
