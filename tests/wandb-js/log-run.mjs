// Logs a small run with the official W&B JavaScript SDK. WANDB_BASE_URL and WANDB_API_KEY point it at the fake
// server; the C# test then checks what the fake recorded.
import wandb from '@wandb/sdk';

const run = await wandb.init({ project: 'js-sdk-check', config: { lr: 0.001, latent: 16 } });
for (let step = 0; step < 5; step++) {
  run.log({ 'train/loss': 10 / (step + 1), epoch: 1 });
}
await run.finish();
console.log(`logged run ${run.id} to ${run.url()}`);
