/**
 * At most `permits` holders at once; the others wait in order. A waiter gives up at its
 * deadline (the timeout error), so a queue of expensive work cannot hold a caller forever.
 */
export class Semaphore {
  #free: number;
  readonly #waiting: Array<{ grant: () => void; timer: NodeJS.Timeout }> = [];

  constructor(permits: number) {
    this.#free = permits;
  }

  async run<T>(deadline: number, timeoutError: () => Error, work: () => Promise<T>): Promise<T> {
    await this.#acquire(deadline, timeoutError);
    try {
      return await work();
    } finally {
      this.#release();
    }
  }

  #acquire(deadline: number, timeoutError: () => Error): Promise<void> {
    if (this.#free > 0) {
      this.#free--;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        grant: resolve,
        timer: setTimeout(
          () => {
            this.#waiting.splice(this.#waiting.indexOf(waiter), 1);
            reject(timeoutError());
          },
          Math.max(0, deadline - Date.now()),
        ),
      };
      this.#waiting.push(waiter);
    });
  }

  #release(): void {
    const next = this.#waiting.shift();
    if (!next) {
      this.#free++;
      return;
    }
    clearTimeout(next.timer);
    next.grant();
  }
}
